"""Policy and value heads on top of the fused features."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float) -> nn.Sequential:
    """Layer norm, then a ReLU MLP with orthogonal init; the last layer's gain is ``out_gain``.

    The input layer norm matters: fused features are wide and correlated (norms ~10), which
    saturated every unit of the tanh MLP this used to be and cut the encoders off from the
    gradient; supervised vqa stayed at chance on colour questions.
    """
    layers: list[nn.Module] = [nn.LayerNorm(in_dim)]
    for width in hidden:
        linear = nn.Linear(in_dim, width)
        nn.init.orthogonal_(linear.weight, gain=2**0.5)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
        in_dim = width
    last = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(last.weight, gain=out_gain)
    nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


class PolicyValueHeads(nn.Module):
    """``policy``: features -> action logits; ``value``: value features -> V(s).

    The policy's last layer starts near zero (gain 0.01), so the first policy is close to
    uniform, the usual PPO initialisation.

    With ``floor`` > 0 the action distribution is a mixture, ``(1 - floor) * softmax(z) +
    floor / num_actions``, returned as its log-probabilities (valid logits for RLlib's
    Categorical): every action keeps at least ``floor / num_actions`` probability, however
    sure the policy gets, and the greedy action is unchanged. PPO's ratios and entropy are
    those of the mixture, so training stays on-policy. Why: with feedback from labels, an
    answer the policy has stopped giving can never be labelled right again (on vqa the
    policy put 1e-4 on five of ten right words, and no label ever showed them); an entropy
    bonus cannot bring such an action back, its gradient vanishes with the probability.
    """

    def __init__(
        self,
        policy_in: int,
        value_in: int,
        num_actions: int,
        hidden: Sequence[int],
        floor: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"policy floor must be in [0, 1), got {floor}")
        self.policy = mlp(policy_in, hidden, num_actions, out_gain=0.01)
        self.value = mlp(value_in, hidden, 1, out_gain=1.0)
        self.floor = floor
        self._log_keep = math.log1p(-floor)
        self._log_uniform = math.log(floor / num_actions) if floor > 0 else -math.inf

    @property
    def floor_logp(self) -> float | None:
        """log(floor / num_actions): what the floor's uniform part gives each action (None
        without a floor). With an action's log-probability it says how likely the floor drew
        that action (`callbacks.episodes.floor_share`)."""
        return self._log_uniform if self.floor > 0.0 else None

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Action logits (B, num_actions) (log-probabilities of the mixture with a floor)."""
        logits = self.policy(features)
        if self.floor <= 0.0:
            return logits
        mixed = torch.log_softmax(logits, dim=-1) + self._log_keep
        return torch.logaddexp(mixed, torch.full_like(mixed, self._log_uniform))

    def values(self, features: torch.Tensor) -> torch.Tensor:
        """State values (B,)."""
        return self.value(features).squeeze(-1)

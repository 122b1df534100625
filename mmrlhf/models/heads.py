"""Policy and value heads on top of the fused features."""

from __future__ import annotations

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
    """

    def __init__(
        self, policy_in: int, value_in: int, num_actions: int, hidden: Sequence[int]
    ) -> None:
        super().__init__()
        self.policy = mlp(policy_in, hidden, num_actions, out_gain=0.01)
        self.value = mlp(value_in, hidden, 1, out_gain=1.0)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Action logits (B, num_actions)."""
        return self.policy(features)

    def values(self, features: torch.Tensor) -> torch.Tensor:
        """State values (B,)."""
        return self.value(features).squeeze(-1)

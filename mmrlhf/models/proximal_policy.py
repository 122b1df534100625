"""Decoupled PPO for batches sampled by an older policy (`OverlappedPPO`'s one update of lag).

PPO clips the ratio pi_theta / pi_old, where pi_old is the policy that sampled the batch. When
the batch comes from the weights *before* the Learner's last update (as with overlapped
sampling), that ratio starts each update already away from 1, and the clip discards the
gradient of every row the last update moved far: early learning on the quickstart task took
about twice the iterations.

Hilton et al. (2021, "Batch size-invariance for policy optimization") decouple the two roles
of pi_old: the *proximal* policy the clip is centred on, and the *behaviour* policy that
sampled the data, corrected for with an importance weight:

    L = E_behaviour[ w * min(r * A, clip(r, 1 - eps, 1 + eps) * A) ],
    r = pi_theta / pi_prox,   w = min(pi_prox / pi_behaviour, rho_max)

with pi_prox the Learner's weights as the update starts. Since w > 0 multiplies both arms of the
min, PPO's own loss computes L unchanged when the batch carries log pi_prox as the action
log-probability and w * A as the advantage: :class:`ProximalPolicyCorrection` (a Learner
connector piece after GAE and `DropBootstrapRows`) rewrites those two columns, and the action
distribution inputs PPO's optional KL term reads, with one no-grad forward pass. The weight is
truncated at `rho_max` (IMPALA's V-trace truncation, 1 by default) to bound its variance.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override

IS_WEIGHT_MEAN_KEY = "policy_lag/is_weight_mean"
IS_WEIGHT_TRUNCATED_KEY = "policy_lag/is_weight_truncated"
"""Metric keys, under the module id in `result["learners"]`."""

_NEEDED = frozenset({Columns.ACTION_LOGP, Postprocessing.ADVANTAGES})


def decoupled_columns(
    prox_logp: torch.Tensor,
    behaviour_logp: torch.Tensor,
    advantages: torch.Tensor,
    rho_max: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The advantages weighted by `min(pi_prox / pi_behaviour, rho_max)`, and those weights."""
    weights = torch.exp(prox_logp - behaviour_logp).clamp(max=rho_max)
    return advantages * weights, weights


class ProximalPolicyCorrection(ConnectorV2):
    """Learner piece: centre PPO's clip on the Learner's current policy, importance-weight the
    behaviour policy's samples (decoupled PPO; see the module docstring)."""

    def __init__(self, *args: Any, rho_max: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if rho_max <= 0:
            raise ValueError(f"rho_max must be > 0, got {rho_max}")
        self.rho_max = rho_max

    @override(ConnectorV2)
    def __call__(
        self,
        *,
        rl_module: RLModule,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        metrics: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Rewrite each module's log-probabilities, advantages and distribution inputs."""
        for module_id, module_batch in batch.items():
            if not isinstance(module_batch, dict) or not module_batch.keys() >= _NEEDED:
                continue  # nothing sampled to reweight (or no GAE ran before this piece)
            module = rl_module[module_id]
            with torch.no_grad():
                logits = module.forward_inference(module_batch)[Columns.ACTION_DIST_INPUTS]
                dist = module.get_train_action_dist_cls().from_logits(logits)
                prox_logp = dist.logp(module_batch[Columns.ACTIONS])
            advantages, weights = decoupled_columns(
                prox_logp,
                module_batch[Columns.ACTION_LOGP],
                module_batch[Postprocessing.ADVANTAGES],
                self.rho_max,
            )
            if metrics is not None:
                mask = module_batch.get(Columns.LOSS_MASK)
                real = slice(None) if mask is None else mask.bool()
                ratio_over = (prox_logp - module_batch[Columns.ACTION_LOGP])[real] > math.log(
                    self.rho_max
                )
                metrics.log_value(
                    (module_id, IS_WEIGHT_MEAN_KEY), float(weights[real].mean()), window=1
                )
                metrics.log_value(
                    (module_id, IS_WEIGHT_TRUNCATED_KEY), float(ratio_over.float().mean()), window=1
                )
            module_batch[Postprocessing.ADVANTAGES] = advantages
            module_batch[Columns.ACTION_LOGP] = prox_logp
            module_batch[Columns.ACTION_DIST_INPUTS] = logits
        return batch

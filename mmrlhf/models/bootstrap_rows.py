"""Drop PPO's artificial bootstrap rows from the train batch once advantages are computed.

RLlib's PPO Learner appends one artificial timestep to every episode
(`AddOneTsToEpisodesAndTruncate`) so the value net can bootstrap at its end, and keeps the row
in the batch with `LOSS_MASK=False`. On one-step tasks (vqa, retrieval) that doubles the
batch: a 512-step batch becomes 1,024 rows, every epoch runs twice the minibatches, and half
of each minibatch is masked out of the loss. Those rows also enter the advantage
standardisation in `GeneralAdvantageEstimation`, skewing it.

:class:`DropBootstrapRows` runs after GAE: it keeps only the `LOSS_MASK=True` rows, drops the
mask (every row now counts) and standardises the advantages again over the real rows.
`minibatch_size` then means env steps, as in other PPO implementations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override


def keep_rows(data: Any, keep: torch.Tensor, rows: int) -> Any:
    """`data` with only the `keep` rows of every tensor/array whose first dim is `rows`."""
    if isinstance(data, dict):
        return {k: keep_rows(v, keep, rows) for k, v in data.items()}
    if isinstance(data, torch.Tensor) and data.dim() > 0 and data.shape[0] == rows:
        return data[keep.to(data.device)]
    if isinstance(data, np.ndarray) and data.ndim > 0 and data.shape[0] == rows:
        return data[keep.cpu().numpy()]
    return data


class DropBootstrapRows(ConnectorV2):
    """Learner piece (after GAE): drop `LOSS_MASK=False` rows, re-standardise advantages."""

    @override(ConnectorV2)
    def __call__(
        self,
        *,
        rl_module: RLModule,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        """Filter each module's batch in place of the masked one."""
        for module_id, module_batch in list(batch.items()):
            mask = module_batch.get(Columns.LOSS_MASK) if isinstance(module_batch, dict) else None
            if mask is None or mask.dim() != 1:  # absent, or time-ranked (stateful) batches
                continue
            keep = torch.as_tensor(mask, dtype=torch.bool)
            if bool(keep.all()) or not bool(keep.any()):
                continue
            filtered = keep_rows(module_batch, keep, int(keep.shape[0]))
            del filtered[Columns.LOSS_MASK]
            adv = filtered.get(Postprocessing.ADVANTAGES)
            if isinstance(adv, torch.Tensor) and adv.numel() > 1:
                filtered[Postprocessing.ADVANTAGES] = (adv - adv.mean()) / adv.std(
                    unbiased=False
                ).clamp(min=1e-4)
            batch[module_id] = filtered
        return batch

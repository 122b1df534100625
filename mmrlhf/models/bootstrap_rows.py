"""PPO's artificial bootstrap rows: add them only where GAE reads them, drop them after GAE.

RLlib's PPO Learner appends one artificial timestep to every episode
(`AddOneTsToEpisodesAndTruncate`) so the value net can bootstrap at its end, and keeps the row
in the batch with `LOSS_MASK=False`. On one-step tasks (vqa, retrieval) that doubles the
batch: a 512-step batch becomes 1,024 rows, every epoch runs twice the minibatches, and half
of each minibatch is masked out of the loss. Those rows also enter the advantage
standardisation in `GeneralAdvantageEstimation`, skewing it.

:class:`DropBootstrapRows` runs after GAE: it keeps only the `LOSS_MASK=True` rows, drops the
mask (every row now counts) and standardises the advantages again over the real rows.
`minibatch_size` then means env steps, as in other PPO implementations.

:class:`AddBootstrapTimesteps` replaces `AddOneTsToEpisodesAndTruncate` at the head of the
Learner pipeline and adds the row only where its value is used: after a truncated episode or
a chunk that goes on. After a terminated step GAE multiplies V(s') by zero and stops its
recursion, so the next row can be anything, the next episode's first step included. On
one-step tasks every episode terminates, and the pipeline then moves half the rows through
every later piece.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner.add_one_ts_to_episodes_and_truncate import (
    AddOneTsToEpisodesAndTruncate,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.postprocessing.episodes import add_one_ts_to_episodes_and_truncate

from mmrlhf.models.advantages import standardize_advantages


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
    """Learner piece (after GAE): drop `LOSS_MASK=False` rows, re-standardise advantages.

    A batch whose rows are all real (every episode terminated) just loses the mask.
    """

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
            if bool(keep.all()):  # GAE standardised over real rows only; the mask is moot
                del module_batch[Columns.LOSS_MASK]
                continue
            if not bool(keep.any()):
                continue
            filtered = keep_rows(module_batch, keep, int(keep.shape[0]))
            del filtered[Columns.LOSS_MASK]
            adv = filtered.get(Postprocessing.ADVANTAGES)
            if isinstance(adv, torch.Tensor) and adv.numel() > 1:
                filtered[Postprocessing.ADVANTAGES] = standardize_advantages(adv)
            batch[module_id] = filtered
        return batch


class AddBootstrapTimesteps(AddOneTsToEpisodesAndTruncate):
    """`AddOneTsToEpisodesAndTruncate` that leaves terminated episodes as they are.

    Same columns and conventions as RLlib's piece (`LOSS_MASK`, per-step `TERMINATEDS` and
    `TRUNCATEDS`, episode ids made unique per chunk); a terminated episode just gets no
    phantom step. Multi-agent episodes and stateful modules (whose zero-padding expects
    every episode one step longer) take RLlib's path unchanged.
    """

    @override(AddOneTsToEpisodesAndTruncate)
    def __call__(  # explore, shared_data and the rest of RLlib's keywords: **kwargs
        self, *, rl_module: RLModule, batch: dict[str, Any], episodes: list[Any], **kwargs: Any
    ) -> Any:
        """Extend the episodes that bootstrap; write the three columns for every episode."""
        if not episodes or isinstance(episodes[0], MultiAgentEpisode) or rl_module.is_stateful():
            return super().__call__(rl_module=rl_module, batch=batch, episodes=episodes, **kwargs)
        for i, episode in enumerate(
            self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
        ):
            # As RLlib's piece: chunks of one episode must stay separate batch items.
            episode.id_ += "_" + str(i)
            steps = len(episode)
            terminated = bool(episode.is_terminated)
            if not terminated:
                add_one_ts_to_episodes_and_truncate([episode])  # marks it truncated
            # The flags describe each step's own transition; the phantom step has none.
            flags = [False] * (steps - 1)
            phantom = [] if terminated else [False]
            rows = steps + len(phantom)
            self.add_n_batch_items(
                batch, Columns.LOSS_MASK, [True] * steps + phantom, rows, episode
            )
            self.add_n_batch_items(
                batch, Columns.TERMINATEDS, [*flags, terminated, *phantom], rows, episode
            )
            self.add_n_batch_items(
                batch, Columns.TRUNCATEDS, [*flags, not terminated, *phantom], rows, episode
            )
        shared_data = kwargs.get("shared_data")
        if shared_data is not None:
            shared_data["_added_loss_mask_for_valid_episode_ts"] = True
        return batch

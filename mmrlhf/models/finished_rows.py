"""Skip the policy's forward pass for envs whose episode has just ended.

RLlib 2.60 steps gymnasium vector envs in ``NEXT_STEP`` autoreset mode: after an episode ends,
the next ``env.step`` of that sub-env only resets it and ignores the action. The EnvRunner
still runs the module on the finished episode's last observation to produce that ignored
action. On one-step tasks (vqa, retrieval) every other forward pass is such a wasted one.

:class:`MarkFinishedEpisodes` (an env-to-module connector piece) adds a boolean column
:data:`FINISHED` that is True for rows whose episode is done; ``MultimodalModel``'s inference
and exploration passes then compute only the live rows and give finished rows zero logits.
The actions drawn for those rows never reach an episode or the env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override

# Batch column: bool (B,), True where the row's episode has ended (its action is ignored).
FINISHED = "mm_finished"


class MarkFinishedEpisodes(ConnectorV2):
    """Env-to-module piece that writes :data:`FINISHED` for every sub-env's episode."""

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
        """Add one bool per episode, in the batch's row order (single-agent episodes)."""
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=True):
            done = bool(episode.is_done)
            self.add_batch_item(batch, FINISHED, done, single_agent_episode=episode)
        return batch


def finished_rows_connector(
    env: gym.Env | None = None, spaces: dict | None = None, device: Any = None
) -> list[ConnectorV2]:
    """``config.env_runners(env_to_module_connector=...)`` factory (RLlib's signature)."""
    return [MarkFinishedEpisodes()]

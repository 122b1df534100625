"""EnvRunner side of `source="reward_model"`: score every finished episode, feed the hub.

`RewardModelFeedback` is what `FeedbackCallback` delegates to in each EnvRunner:

1. builds the episode's `EpisodeSample` (first image and text observation, response text
   tokenised with the env's own tokenizer);
2. pulls newer reward-model weights without waiting (`RewardModelClient.poll`);
3. returns the normalised reward of the newest loaded model (None before the first version);
4. sends a fraction of the samples to the hub in fire-and-forget batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from mmrlhf.callbacks.episodes import floor_share
from mmrlhf.envs.tokenizer import Tokenizer
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.records import EpisodeRecord
from mmrlhf.feedback.reward_model import RewardModelSpec
from mmrlhf.feedback.rlhf import spec_for_sample
from mmrlhf.feedback.rm_hub import RewardModelClient
from mmrlhf.feedback.samples import EpisodeSample, hash_u64, sample_from_record
from mmrlhf.feedback.scoring import RewardScorer

logger = logging.getLogger(__name__)


def first_text(episode: SingleAgentEpisode) -> np.ndarray:
    """The first observation's `text` ids of an episode (its first chunk)."""
    obs = episode.get_observations(0)
    if not isinstance(obs, dict) or "text" not in obs:
        raise ValueError("the reward model needs Dict observations with a 'text' key")
    return np.asarray(obs["text"], dtype=np.int64)


def env_tokenizer(env: Any, env_index: int | None, env_config: Any) -> Tokenizer:
    """The tokenizer of the env that ran the episode, or a fresh env's if it is out of reach.

    Args:
        env: What RLlib passes to episode callbacks (the gymnasium vector env, unwrapped).
        env_index: Index of the sub-env.
        env_config: The EnvRunner's env_config (fallback: build `MyMultimodalEnv` from it).
    """
    envs = getattr(env, "envs", None)
    if envs:
        sub = envs[env_index or 0]
        tokenizer = getattr(getattr(sub, "unwrapped", sub), "tokenizer", None)
        if tokenizer is not None:
            return tokenizer
    from mmrlhf.envs import MyMultimodalEnv

    return MyMultimodalEnv(dict(env_config or {})).tokenizer


@dataclass(frozen=True)
class EpisodeReward:
    """The reward-model reward of one episode (None before any model is loaded)."""

    reward: float | None
    raw: float | None = None
    uncertainty: float | None = None


class RewardModelFeedback:
    """Per-EnvRunner reward-model scoring and episode intake (see module docstring).

    Args:
        config: Feedback options.
        hub: The `RewardModelHub` actor.
        runner_id: The EnvRunner's worker_index (seeds which episodes are sent).
        tokenizer: The env's tokenizer (encodes responses).
    """

    def __init__(
        self,
        config: FeedbackConfig,
        *,
        hub: ray.actor.ActorHandle,
        runner_id: int,
        tokenizer: Tokenizer,
    ) -> None:
        self.config = config
        self.runner_id = runner_id
        self.tokenizer = tokenizer
        self.client = RewardModelClient(
            hub, send_block=config.rm_send_block, sync_every=config.rm_sync_every
        )
        self.scorer = RewardScorer(clip=config.rm_reward_clip, prior_count=config.rm_norm_prior)
        self._spec: RewardModelSpec | None = None
        self._send_key = str(config.seed).encode()
        self._send_below = int(config.rm_send_fraction * 2**64)

    def _spec_for(self, sample: EpisodeSample) -> RewardModelSpec:
        if self._spec is None:
            self._spec = spec_for_sample(
                self.config, sample, vocab_size=int(self.tokenizer.vocab_size)
            )
        return self._spec

    def process(
        self,
        record: EpisodeRecord,
        episode: SingleAgentEpisode,
        prev_chunks: Sequence[SingleAgentEpisode] = (),
        floor_logp: float | None = None,
    ) -> EpisodeReward:
        """Score one finished episode and maybe send it to the hub.

        `floor_logp`: the sampling policy's floor (`MultimodalModel.floor_logp`), so the
        sample says how likely the floor drew its response (`EpisodeSample.floor_share`).
        """
        first = prev_chunks[0] if prev_chunks else episode
        sample = sample_from_record(
            record,
            prompt_ids=first_text(first),
            tokenizer=self.tokenizer,
            response_len=self.config.rm_response_len,
            floor_share=floor_share([*prev_chunks, episode], floor_logp),
        )
        spec = self._spec_for(sample)
        published = self.client.poll(self.scorer.version)
        if published is not None and self.scorer.load(published):
            logger.info("EnvRunner %d now uses reward model v%d", self.runner_id, published.version)
        if self._sends(sample):
            self.client.add(sample, spec)
        if not self.scorer.ready:
            return EpisodeReward(reward=None)
        reward, raw, std = self.scorer.score(sample)
        return EpisodeReward(reward=reward, raw=raw, uncertainty=std)

    def _sends(self, sample: EpisodeSample) -> bool:
        """Whether this episode goes to the hub: `rm_send_fraction` of the scenes, decided
        by a seeded hash of the scene, so every answer to a repeated scene (env
        `scene_repeats`) arrives together for side-by-side queries, and the choice does not
        depend on model state."""
        if self.config.rm_send_fraction >= 1.0:
            return True
        return hash_u64(sample.scene_key, self._send_key) < self._send_below

    def end_sample(self) -> None:
        """Send what is buffered (fire-and-forget); collect a finished weight check."""
        self.client.flush()
        published = self.client.poll(self.scorer.version, episodes=0)
        if published is not None:
            self.scorer.load(published)

    @property
    def version(self) -> int:
        """Reward-model version this runner scores with (0 = none yet)."""
        return self.scorer.version

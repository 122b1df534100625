"""`EpisodeSample`: what the reward model reads of an episode, stored compactly.

The reward model scores (image, prompt, response):

- image: the episode's first image observation, uint8 (H, W, 3);
- prompt: the first text observation's token ids, int64 (L,) (the question / instruction);
- response: the decoded agent response (`info["response"]`) tokenised with the env's own
  tokenizer, int64 (R,), left-aligned, 0 = padding.

Using the decoded response text rather than action ids keeps the reward model's input the same
for every task and the same as what a person sees in a labelling app (image, prompt, response
strings). A sample is about 12 KB for a 64x64 image; the ground-truth `score` rides along for
simulated raters and metrics only and is never a reward-model input.

`EpisodePool` keeps the most recent samples the EnvRunners sent, grouped by prompt so queries
can compare answers to the same prompt.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from mmrlhf.envs.tokenizer import Tokenizer
from mmrlhf.feedback.records import EpisodeRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeSample:
    """One finished episode as the reward model sees it (plus ground truth for simulation).

    Attributes:
        episode_id: Unique episode id.
        image: First image observation, uint8 (H, W, 3).
        prompt_ids: First text observation, int64 (L,).
        response_ids: Tokenised response, int64 (R,).
        score: Ground-truth task score in [0, 1] (simulated raters and metrics only).
        prompt: Decoded prompt (for people and logs).
        response: Decoded response (for people and logs).
        env_runner_id: EnvRunner that sampled it (-1 = none).
        floor_share: Probability that the policy floor's uniform part drew the response
            (`callbacks.episodes.floor_share`); None when unknown or without a floor.
    """

    episode_id: str
    image: np.ndarray
    prompt_ids: np.ndarray
    response_ids: np.ndarray
    score: float
    prompt: str = ""
    response: str = ""
    env_runner_id: int = -1
    floor_share: float | None = None

    @cached_property
    def prompt_key(self) -> str:
        """Groups episodes with the same prompt text (queries compare answers to one prompt)."""
        return hashlib.blake2b(self.prompt_ids.tobytes(), digest_size=8).hexdigest()

    @cached_property
    def scene_key(self) -> str:
        """Groups episodes of the same scene: same image and same prompt (an env with
        `scene_repeats > 1` serves each scene several times)."""
        digest = hashlib.blake2b(self.image.tobytes(), digest_size=8)
        digest.update(self.prompt_ids.tobytes())
        return digest.hexdigest()

    @cached_property
    def response_key(self) -> str:
        """Groups episodes with the same response tokens."""
        return hashlib.blake2b(self.response_ids.tobytes(), digest_size=8).hexdigest()

    @cached_property
    def floor_drawn(self) -> bool:
        """Whether the policy floor's uniform part drew the response: a draw with probability
        `floor_share` (False when unknown), made once per episode from a hash of its id.
        Fixed, so an episode that stays in a query pool for several rounds is not drawn again
        each round until it passes (`feedback.queries.novel_queries`)."""
        if not self.floor_share:
            return False
        return hash_u64(self.episode_id) < self.floor_share * 2.0**64

    @property
    def nbytes(self) -> int:
        """Bytes of array data."""
        return int(self.image.nbytes + self.prompt_ids.nbytes + self.response_ids.nbytes)


def hash_u64(text: str, key: bytes = b"") -> int:
    """A 64-bit number from `text` (blake2b, keyed with `key`): the same in every process and
    run, so a draw made with it is fixed per text."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, key=key).digest()
    return int.from_bytes(digest, "little")


def encode_response(tokenizer: Tokenizer, response: str, length: int) -> np.ndarray:
    """The response text as padded int64 ids of `length` (cut at the end if longer)."""
    return np.asarray(tokenizer.encode(response, length), dtype=np.int64)


def sample_from_record(
    record: EpisodeRecord,
    *,
    prompt_ids: np.ndarray,
    tokenizer: Tokenizer,
    response_len: int,
    floor_share: float | None = None,
) -> EpisodeSample:
    """Build the sample of a finished episode.

    Args:
        record: The episode record (its `image` must be set).
        prompt_ids: The first text observation.
        tokenizer: The env's tokenizer (encodes the response).
        response_len: Padded response length R.
        floor_share: See `EpisodeSample.floor_share`.

    Raises:
        ValueError: If the record has no image.
    """
    if record.image is None:
        raise ValueError(f"episode {record.episode_id} has no image; the reward model needs one")
    return EpisodeSample(
        episode_id=record.episode_id,
        image=np.ascontiguousarray(record.image, dtype=np.uint8),
        prompt_ids=np.asarray(prompt_ids, dtype=np.int64).copy(),
        response_ids=encode_response(tokenizer, record.response, response_len),
        score=float(record.score),
        prompt=record.prompt,
        response=record.response,
        env_runner_id=record.env_runner_id,
        floor_share=floor_share,
    )


@dataclass(frozen=True)
class SampleTensors:
    """A stack of samples as model inputs: image (B, H, W, 3) uint8, prompt (B, L), response
    (B, R) int64."""

    image: torch.Tensor
    prompt: torch.Tensor
    response: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])


def stack_samples(samples: Sequence[EpisodeSample]) -> SampleTensors:
    """Stack samples into one batch of tensors (no copy of the uint8 images beyond the stack)."""
    if not samples:
        raise ValueError("cannot stack an empty list of samples")
    return SampleTensors(
        image=torch.from_numpy(np.stack([s.image for s in samples])),
        prompt=torch.from_numpy(np.stack([s.prompt_ids for s in samples])),
        response=torch.from_numpy(np.stack([s.response_ids for s in samples])),
    )


class EpisodePool:
    """The most recent `capacity` samples, by episode id, oldest evicted first.

    Args:
        capacity: Samples kept.
    """

    def __init__(self, capacity: int = 2048) -> None:
        if capacity < 1:
            raise ValueError(f"pool capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, EpisodeSample] = OrderedDict()
        self.received = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, episode_id: object) -> bool:
        return episode_id in self._items

    def add(self, samples: Iterable[EpisodeSample]) -> None:
        """Add samples (a repeated id replaces the older one)."""
        for s in samples:
            self._items.pop(s.episode_id, None)
            self._items[s.episode_id] = s
            self.received += 1
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, episode_id: str) -> EpisodeSample | None:
        """The sample with this id, if still in the pool."""
        return self._items.get(episode_id)

    def samples(self) -> list[EpisodeSample]:
        """All kept samples, oldest first."""
        return list(self._items.values())

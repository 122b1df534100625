"""Helpers shared by the RLHF tests: tiny samples and a tiny reward-model spec."""

from __future__ import annotations

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.reward_model import RewardModelSpec
from mmrlhf.feedback.rlhf import make_spec
from mmrlhf.feedback.samples import EpisodeSample

IMAGE = 16
PROMPT_LEN = 6
VOCAB = 20

TINY_RM = {
    "rm_ensemble": 2,
    "rm_embed_dim": 8,
    "rm_hidden": 16,
    "rm_cnn_channels": [4],
    "rm_response_len": 2,
}


def make_sample(
    episode_id: str, score: float = 0.0, *, prompt: int = 1, response: int = 3, seed: int = 0
) -> EpisodeSample:
    """A small sample: random image, prompt token `prompt`, response token `response`."""
    rng = np.random.default_rng(seed)
    prompt_ids = np.zeros(PROMPT_LEN, np.int64)
    prompt_ids[:2] = [prompt, 2]
    return EpisodeSample(
        episode_id=episode_id,
        image=rng.integers(0, 256, (IMAGE, IMAGE, 3), dtype=np.uint8),
        prompt_ids=prompt_ids,
        response_ids=np.array([response, 0], np.int64),
        score=score,
    )


@pytest.fixture
def tiny_config() -> FeedbackConfig:
    return FeedbackConfig(enabled=True, source="reward_model", **TINY_RM)


@pytest.fixture
def tiny_spec(tiny_config: FeedbackConfig) -> RewardModelSpec:
    return make_spec(tiny_config, image_size=IMAGE, prompt_len=PROMPT_LEN, vocab_size=VOCAB)


def answer_head_spec(head: str) -> RewardModelSpec:
    """The tiny spec with one of the answer heads."""
    cfg = FeedbackConfig(enabled=True, source="reward_model", rm_head=head, **TINY_RM)
    return make_spec(cfg, image_size=IMAGE, prompt_len=PROMPT_LEN, vocab_size=VOCAB)


@pytest.fixture
def answer_spec() -> RewardModelSpec:
    """The tiny spec with the answer_logits head."""
    return answer_head_spec("answer_logits")


@pytest.fixture
def sigmoid_spec() -> RewardModelSpec:
    """The tiny spec with the answer_sigmoid head."""
    return answer_head_spec("answer_sigmoid")

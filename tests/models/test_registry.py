"""Model registry and the RLModuleSpec helper."""

from __future__ import annotations

import gymnasium as gym
import pytest
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from mmrlhf.models import ModelConfig, MultimodalModel, get_model, model_spec, register_model
from mmrlhf.models.registry import UnknownModelError, registered_models
from tests.models.conftest import make_obs_space


class _OtherModel(MultimodalModel):
    pass


def test_multimodal_model_is_registered() -> None:
    assert get_model("MultimodalModel") is MultimodalModel
    assert "MultimodalModel" in registered_models()


def test_unknown_name_lists_registered_names() -> None:
    with pytest.raises(UnknownModelError, match="MultimodalModel") as info:
        get_model("NoSuchModel")
    assert isinstance(info.value, KeyError)
    assert "NoSuchModel" in str(info.value)


def test_register_rejects_non_modules_and_silent_overwrites() -> None:
    with pytest.raises(TypeError, match="RLModule subclass"):
        register_model("bad", dict)  # type: ignore[arg-type]
    register_model("MultimodalModel", MultimodalModel)  # same class again: fine
    with pytest.raises(ValueError, match="already registered"):
        register_model("MultimodalModel", _OtherModel)
    register_model("_test_other", _OtherModel)
    assert get_model("_test_other") is _OtherModel


def test_model_spec_builds_the_configured_module() -> None:
    cfg = ModelConfig(fusion="sum", embed_dim=32)
    spec = model_spec(cfg)
    assert isinstance(spec, RLModuleSpec) and spec.module_class is MultimodalModel
    spec.observation_space = make_obs_space()
    spec.action_space = gym.spaces.Discrete(4)
    module = spec.build()
    assert isinstance(module, MultimodalModel)
    assert module.mm_config == cfg

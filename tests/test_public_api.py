"""The names others build on resolve from the top-level package."""

from __future__ import annotations

import gymnasium as gym

import mmrlhf


def test_lazy_public_names_resolve() -> None:
    for name in mmrlhf.__all__:
        assert getattr(mmrlhf, name) is not None, name


def test_env_is_registered_on_import() -> None:
    from ray.tune.registry import ENV_CREATOR, _global_registry

    assert "mmrlhf/MyMultimodalEnv-v0" in gym.registry
    assert _global_registry.contains(ENV_CREATOR, "MyMultimodalEnv")


def test_model_is_registered_by_name() -> None:
    from mmrlhf.models import get_model

    assert get_model("MultimodalModel") is mmrlhf.MultimodalModel

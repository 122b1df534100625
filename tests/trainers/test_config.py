"""Experiment config: YAML loading, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrlhf.config import ConfigError, load_config, parse_overrides
from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.trainers.evaluate import policy_logits
from mmrlhf.trainers.probe import build_model

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    load_config(path)


def test_overrides_reach_nested_fields() -> None:
    cfg = load_config(None, ["feedback.rater=noisy", "feedback.sigma=0.5", "env.task=caption"])
    assert (cfg.feedback.rater, cfg.feedback.sigma, cfg.env.task) == ("noisy", 0.5, "caption")


def test_values_parse_as_yaml() -> None:
    assert parse_overrides(["a=1", "b=[x, y]", "c=true", "d=null", "e=1e-3"]) == {
        "a": 1, "b": ["x", "y"], "c": True, "d": None, "e": 1e-3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("trainig.lr=1", "trainig: unknown key; did you mean training?"),
        ("env.image_sise=32", "env.image_sise: unknown key; did you mean image_size"),
        ("feedback.ratr=noisy", "feedback.ratr: unknown key; did you mean rater?"),
        ("feedback.rater=psychic", "unknown rater 'psychic'; allowed:"),
        ("model.fusion=glue", "model.fusion: Input should be 'concat', 'sum', 'weighted'"),
        ("training.minibatch_size=4096", "minibatch_size (4096) must be <= train_batch_size"),
        ("stop.iterations=null", "set at least one of iterations, env_steps"),
        ("tune.search_space={model.fusion: {grid: [a], choice: [b]}}", "exactly one of grid"),
    ],
)
def test_errors_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert fragment in str(err.value)


def test_scene_queries_need_scene_repeats() -> None:
    rlhf = ["feedback.source=reward_model", "feedback.query_group=scene"]
    with pytest.raises(ConfigError, match=r"env.scene_repeats must be >= feedback.query_k \(2\)"):
        load_config(None, rlhf)
    cfg = load_config(None, [*rlhf, "env.scene_repeats=2"])
    assert (cfg.env.scene_repeats, cfg.feedback.query_group) == (2, "scene")


def test_bad_override_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expects key=value"):
        load_config(None, ["training.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_tune_logger_integrations_name_the_missing_extra() -> None:
    import importlib.util

    from mmrlhf.trainers.tune import logger_callbacks

    assert logger_callbacks(load_config(None)) == []
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ValueError, match=r"pip install 'mmrlhf\[wandb\]'"):
            logger_callbacks(load_config(None, ["tune.wandb_project=demo"]))


def test_ppo_config_carries_training_and_sampling_settings() -> None:
    from mmrlhf.callbacks.env_runner import CompleteEpisodesEnvRunner
    from mmrlhf.trainers.ppo import build_ppo_config

    cfg = load_config(None, ["training.kl_coeff=0", "training.vf_clip_param=2.5"])
    ppo = build_ppo_config(cfg)
    assert not ppo.use_kl_loss and ppo.kl_coeff == 0 and ppo.vf_clip_param == 2.5
    assert ppo.num_envs_per_env_runner == 16  # the default: framework cost per step ~halves
    assert build_ppo_config(load_config(None, [])).use_kl_loss  # RLlib's default stays on
    with_feedback = build_ppo_config(load_config(None, ["feedback.enabled=true"]))
    assert with_feedback.env_runner_cls is CompleteEpisodesEnvRunner


def test_batch_sizes_are_totals_split_over_the_learners() -> None:
    from mmrlhf.trainers.ppo import build_ppo_config

    sizes = ["training.train_batch_size=512", "training.minibatch_size=128"]
    one = build_ppo_config(load_config(None, sizes))
    assert (one.train_batch_size_per_learner, one.minibatch_size) == (512, 128)
    two = build_ppo_config(load_config(None, [*sizes, "training.num_learners=2"]))
    assert (two.train_batch_size_per_learner, two.minibatch_size) == (256, 64)
    assert two.total_train_batch_size == 512
    with pytest.raises(ConfigError, match="minibatch_size .* num_learners"):
        sizes = ["training.train_batch_size=600", "training.minibatch_size=100"]
        load_config(None, [*sizes, "training.num_learners=3"])


def test_weight_decay_reaches_the_learner_next_to_the_rlhf_kl_settings() -> None:
    from mmrlhf.models.learner import (
        ADVANTAGE_NORM_CONFIG,
        KL_COEFF_CONFIG,
        WEIGHT_DECAY_CONFIG,
    )
    from mmrlhf.trainers.ppo import build_ppo_config

    ppo = build_ppo_config(
        load_config(
            None,
            [
                "training.weight_decay=0.05",
                "feedback.kl_coeff=0.1",
                "training.advantage_norm=minibatch",
            ],
        )
    )
    assert ppo.learner_config_dict[WEIGHT_DECAY_CONFIG] == 0.05
    assert ppo.learner_config_dict[KL_COEFF_CONFIG] == 0.1
    assert ppo.learner_config_dict[ADVANTAGE_NORM_CONFIG] == "minibatch"
    assert build_ppo_config(load_config(None, [])).learner_config_dict[
        ADVANTAGE_NORM_CONFIG
    ] == "batch"
    with pytest.raises(ConfigError, match="weight_decay"):
        load_config(None, ["training.weight_decay=-1"])
    with pytest.raises(ConfigError, match="advantage_norm"):
        load_config(None, ["training.advantage_norm=episode"])


# Configs that need files the test machine does not have: the MiniLM extra, a dataset on disk.
NEEDS_ASSETS = {"vqa_minilm.yaml", "dataset_feedback.yaml"}


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if p.name not in NEEDS_ASSETS], ids=lambda p: p.name
)
def test_every_shipped_model_acts_on_its_env(path: Path) -> None:
    """Each config's model (fusion, maps, residual...) builds for its env and acts on a real obs."""
    cfg = load_config(path)
    env = MyMultimodalEnv(cfg.env)
    obs, _ = env.reset(seed=0)
    model = build_model(env, cfg.model)
    logits = policy_logits(model, obs)
    assert logits.shape == (env.action_space.n,)
    assert np.isfinite(logits).all()

"""`build_ppo_config`: the one place a typed `ExperimentConfig` becomes RLlib's `PPOConfig`."""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.ppo import PPOConfig

from mmrlhf.callbacks import apply_feedback
from mmrlhf.config import ExperimentConfig
from mmrlhf.envs import RLLIB_NAME
from mmrlhf.models import MultimodalPPOLearner, model_spec
from mmrlhf.models.finished_rows import finished_rows_connector
from mmrlhf.models.learner import (
    ADVANTAGE_NORM_CONFIG,
    PROXIMAL_RHO_CONFIG,
    SAMPLED_VALUES_CONFIG,
    WEIGHT_DECAY_CONFIG,
)
from mmrlhf.trainers.gc_freeze import freeze_after_first_iterations, freeze_setup_objects
from mmrlhf.trainers.overlapped_ppo import OverlappedPPO


def env_config_dict(cfg: ExperimentConfig, **overrides: Any) -> dict[str, Any]:
    """The env's RLlib `env_config`: the validated EnvConfig fields, plus overrides."""
    return {**cfg.env.model_dump(mode="json"), **overrides}


def build_ppo_config(cfg: ExperimentConfig) -> PPOConfig:
    """Translate `cfg` into a `PPOConfig` on RLlib's new API stack.

    Sets the env (by its registry name), the `MultimodalModel` spec, PPO hyperparameters, the
    EnvRunner layout (with `overlap_sampling`, the algorithm is `OverlappedPPO`), fault
    tolerance, the seed, `gc_freeze`'s callbacks, and the feedback callback (which also
    switches to complete-episode batches when feedback is on).
    """
    t = cfg.training
    overlapped = t.overlap_sampling and t.num_env_runners > 0
    config = (
        PPOConfig(algo_class=OverlappedPPO if overlapped else None)
        .environment(RLLIB_NAME, env_config=env_config_dict(cfg))
        .framework("torch")
        .env_runners(
            num_env_runners=t.num_env_runners,
            num_envs_per_env_runner=t.num_envs_per_env_runner,
            rollout_fragment_length=t.rollout_fragment_length,
            num_cpus_per_env_runner=t.num_cpus_per_env_runner,
            env_to_module_connector=finished_rows_connector,
        )
        .learners(
            num_learners=t.num_learners,
            learner_class=MultimodalPPOLearner,
            learner_config_dict={
                WEIGHT_DECAY_CONFIG: t.weight_decay,
                ADVANTAGE_NORM_CONFIG: t.advantage_norm,
                # Decoupled PPO only where batches lag the Learner (OverlappedPPO).
                PROXIMAL_RHO_CONFIG: t.overlap_rho_max if overlapped else 0.0,
                # Otherwise each batch was sampled with the Learner's weights: its values hold.
                SAMPLED_VALUES_CONFIG: not overlapped,
            },
        )
        .training(
            lr=t.lr,
            gamma=t.gamma,
            lambda_=t.lambda_,
            clip_param=t.clip_param,
            entropy_coeff=t.entropy_coeff,
            vf_loss_coeff=t.vf_loss_coeff,
            grad_clip=t.grad_clip,
            use_kl_loss=t.kl_coeff > 0,
            kl_coeff=t.kl_coeff,
            kl_target=t.kl_target,
            vf_clip_param=t.vf_clip_param,
            # Totals split over the Learners (RLlib's sizes are per Learner).
            train_batch_size_per_learner=t.train_batch_size // t.learner_shares,
            minibatch_size=t.minibatch_size // t.learner_shares,
            num_epochs=t.num_epochs,
        )
        .rl_module(rl_module_spec=model_spec(cfg.model))
        .fault_tolerance(
            restart_failed_env_runners=t.restart_failed_env_runners,
            max_num_env_runner_restarts=1000,
        )
        .debugging(seed=t.seed)
    )
    if t.gc_freeze:
        config = config.callbacks(
            on_algorithm_init=freeze_setup_objects,
            on_environment_created=freeze_setup_objects,
            on_train_result=freeze_after_first_iterations,
            on_sample_end=freeze_after_first_iterations,
        )
    return apply_feedback(config, cfg.feedback)

"""RLlib (through mmrlhf) against Stable-Baselines3 PPO: wall clock to a vqa test accuracy.

    OMP_NUM_THREADS=1 python scripts/bench_vs_sb3.py --out bench_vs_sb3.json

    # one side, other settings, a quick look:
    OMP_NUM_THREADS=1 python scripts/bench_vs_sb3.py --only sb3 --max-minutes 1 \\
        --set training.lr=3e-4 --set model.fusion=sum

Both frameworks train the task of `configs/bench_vs_sb3.yaml` (vqa from oracle feedback only:
env reward off, the rater's label is the episode's reward) with the same PPO numbers, the same
network and the same env, in one process. By default they take turns, one evaluation period
of training each (`--schedule interleaved`): this machine's speed drifts by tens of percent
over minutes, and taking turns gives both the same spells. `--schedule sequential` trains
SB3 to its stop rule, then RLlib.

- RLlib: `build_ppo_config(cfg).build_algo()` and `algo.train()` in a loop, exactly what
  `mmrlhf train` runs (EnvRunners as the config lays them out, FeedbackCallback).
- SB3: `PPO` on a `DummyVecEnv` of as many `MyMultimodalEnv`s as RLlib samples from at once
  (`num_envs_per_env_runner` times the EnvRunners), each wrapped
  by `FeedbackReward` (the project's `EpisodeRecord`, `FeedbackEngine` and `shape_rewards`
  at episode end, as the callback does), with `n_steps = train_batch_size // n_envs`,
  `batch_size = minibatch_size`, `n_epochs`, `lr`, `gamma`, `gae_lambda`, `clip_range`,
  `ent_coef`, `vf_coef`, `max_grad_norm` from the config. The policy's features extractor
  is the project's trunk (text encoder + image encoder + fusion, built from the same
  `ModelConfig`), the heads are a layer norm each, then `net_arch = model.hidden_sizes` with
  ReLU (the project's heads: layer norm, then a ReLU MLP, orthogonal init), the trunk shared
  when `model.share_encoders`. Images reach the trunk as (B, H, W, 3) 0..255 values, as under
  RLlib: `normalize_images=False` and a skipping `VecTransposeImage` keep SB3 from scaling or
  transposing them; the trunk keeps its own initialisation (SB3's orthogonal init is applied
  to the heads only, which is also how the project's heads are initialised); Adam's eps is
  torch's default 1e-8, as in RLlib's learner (AdamW on both sides when
  `training.weight_decay` > 0).

Protocol (the same code for both): the training clock runs only while the framework trains.
At iteration boundaries (after each `algo.train()`, after each SB3 rollout + PPO update) the
clock pauses; if `--eval-every-s` seconds of training passed since
the last evaluation, the current policy answers `--eval-episodes` seeded episodes of the
*test* split greedily (argmax), in batches, and its accuracy is recorded against the training
clock and env steps. Training stops at the first evaluation with accuracy >= `--target`, or
when the training clock passes `--max-minutes`. Evaluation time is not on the clock; neither
is building the algorithm / model. Times to thresholds are quantised to the
evaluation period.

Known differences that are not protocol choices: RLlib clips the value loss at
`vf_clip_param` (10); SB3 does not. SB3 standardises advantages per minibatch, RLlib per
train batch unless `training.advantage_norm=minibatch`, which `configs/bench_vs_sb3.yaml`
sets. With it (and each head's own layer norm on the SB3 side) one update from the same
weights on the same batch moves the two alike to 0.7% (`scripts/probe_sb3_update.py`).
(`configs/bench_vs_sb3.yaml` turns RLlib's adaptive KL penalty off, and the
project's Learner drops PPO's artificial bootstrap rows, so both run the same number of
gradient steps on `minibatch_size` env steps each.)

`configs/bench_vs_sb3.yaml` has RLlib sample in the driver (`num_env_runners: 0`), one process
like SB3: PPO samples, then learns, so on 2 cores a remote EnvRunner only adds the transfer
of every episode (interleaved on this machine, one torch thread: 226 env steps/s local
against 191 with one EnvRunner). `--set training.num_env_runners=1` measures the remote
layout. The main process (SB3, and RLlib's driver and Learner) gets `--threads` torch threads,
each remote EnvRunner `--runner-threads`.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch

from mmrlhf.config import ExperimentConfig, load_config
from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.config import EnvConfig
from mmrlhf.feedback.engine import FeedbackEngine, shape_rewards
from mmrlhf.feedback.records import EpisodeRecord
from mmrlhf.trainers.gc_clock import GCClock

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "bench_vs_sb3.yaml"
BASE_THRESHOLDS = (0.5, 0.8, 0.9)
FRAMEWORKS = ("sb3", "rllib")

ObsBatch = dict[str, np.ndarray]
ActFn = Callable[[ObsBatch], np.ndarray]

logger = logging.getLogger("bench_vs_sb3")


# --------------------------------------------------------------------------------------------
# Evaluation: one function for both frameworks.


def evaluate_accuracy(
    act: ActFn, env_cfg: EnvConfig, *, episodes: int, seed: int, batch: int = 100
) -> dict[str, float]:
    """Greedy accuracy of `act` on `episodes` episodes seeded `seed, seed + 1, ...`.

    Episodes are played `batch` at a time (each env reset with its episode's seed, so which
    episodes are played does not depend on the batching); `act` gets the stacked observations
    of the running episodes and returns one action each. Accuracy is the mean final
    `info["success"]`, as `mmrlhf.trainers.evaluate` computes it for vqa.
    """
    envs = [MyMultimodalEnv(env_cfg) for _ in range(max(1, min(batch, episodes)))]
    obs: list[Any] = [None] * len(envs)
    active: list[int] = []
    next_episode = 0
    for i, env in enumerate(envs):
        if next_episode < episodes:
            obs[i], _ = env.reset(seed=seed + next_episode)
            next_episode += 1
            active.append(i)
    successes: list[float] = []
    scores: list[float] = []
    while active:
        stacked = {k: np.stack([obs[i][k] for i in active]) for k in obs[active[0]]}
        actions = np.asarray(act(stacked)).reshape(-1)
        still: list[int] = []
        for i, action in zip(active, actions, strict=True):
            ob, _, terminated, truncated, info = envs[i].step(int(action))
            if terminated or truncated:
                successes.append(float(bool(info["success"])))
                scores.append(float(info["score"]))
                if next_episode < episodes:
                    obs[i], _ = envs[i].reset(seed=seed + next_episode)
                    next_episode += 1
                    still.append(i)
            else:
                obs[i] = ob
                still.append(i)
        active = still
    return {"accuracy": float(np.mean(successes)), "score": float(np.mean(scores))}


# --------------------------------------------------------------------------------------------
# Garbage-collector time, charged to whichever framework's clock runs (both share one
# process, so a pass set off by one walks the objects of both; none while evaluating).


GC_CLOCK = GCClock()


# --------------------------------------------------------------------------------------------
# Protocol: training clock, periodic evaluation, stop rule. Shared by both frameworks.


@dataclass
class EvalPoint:
    train_s: float
    env_steps: int
    iteration: int
    accuracy: float
    score: float
    eval_s: float


@dataclass
class Protocol:
    """Keeps the training clock and decides, at each iteration boundary, whether to evaluate
    and whether to stop. `boundary` must be called with the clock running; it pauses the clock
    for its own duration (evaluation included)."""

    name: str
    act: ActFn
    env_cfg: EnvConfig
    target: float
    max_train_s: float
    eval_every_s: float
    eval_episodes: int
    eval_seed: int
    eval_batch: int
    curve: list[EvalPoint] = field(default_factory=list)
    train_s: float = 0.0
    stop_reason: str = ""
    iterations: int = 0
    env_steps: int = 0
    _resumed_at: float | None = None
    _last_eval_s: float = 0.0

    def start(self) -> None:
        """Evaluate the initial policy, then start the training clock."""
        self._evaluate(env_steps=0)
        self.resume()

    def resume(self) -> None:
        """Run the training clock (the framework trains from now on)."""
        assert self._resumed_at is None, "clock already running"
        GC_CLOCK.owner = self.name
        self._resumed_at = time.perf_counter()

    def pause(self) -> None:
        """Stop the training clock (the other framework's turn, or an evaluation)."""
        assert self._resumed_at is not None, "clock not running"
        self.train_s += time.perf_counter() - self._resumed_at
        self._resumed_at = None
        GC_CLOCK.owner = None

    @property
    def evaluations(self) -> int:
        return len(self.curve)

    def _evaluate(self, env_steps: int) -> EvalPoint:
        t0 = time.perf_counter()
        m = evaluate_accuracy(
            self.act,
            self.env_cfg,
            episodes=self.eval_episodes,
            seed=self.eval_seed,
            batch=self.eval_batch,
        )
        point = EvalPoint(
            train_s=round(self.train_s, 3),
            env_steps=int(env_steps),
            iteration=self.iterations,
            accuracy=m["accuracy"],
            score=m["score"],
            eval_s=round(time.perf_counter() - t0, 3),
        )
        self.curve.append(point)
        self._last_eval_s = self.train_s
        rate = env_steps / self.train_s if self.train_s > 0 else 0.0
        print(
            f"[{self.name}] train {self.train_s:7.1f} s | iter {self.iterations:4d} | "
            f"steps {env_steps:9,d} ({rate:6.0f}/s) | test acc {point.accuracy:.3f} "
            f"(eval {point.eval_s:.1f} s)",
            flush=True,
        )
        return point

    def boundary(self, env_steps: int) -> bool:
        """One training iteration ended with `env_steps` in all; True to train on."""
        self.pause()
        self.iterations += 1
        self.env_steps = int(env_steps)
        out_of_time = self.train_s >= self.max_train_s
        if out_of_time or self.train_s - self._last_eval_s >= self.eval_every_s:
            point = self._evaluate(env_steps)
            if point.accuracy >= self.target:
                self.stop_reason = f"test accuracy {point.accuracy:.3f} >= {self.target}"
                return False
        if out_of_time:
            self.stop_reason = f"training clock {self.train_s:.0f} s >= {self.max_train_s:.0f} s"
            return False
        self.resume()
        return True

    def finish(self) -> None:
        """Stop the clock if it runs; evaluate the final policy unless just done."""
        if self._resumed_at is not None:
            self.pause()
        if not self.curve or self.curve[-1].env_steps != self.env_steps:
            self._evaluate(self.env_steps)
        self.stop_reason = self.stop_reason or "training ended"

    def summary(self, thresholds: Sequence[float]) -> dict[str, Any]:
        reached: dict[str, dict[str, float | int] | None] = {}
        for th in thresholds:
            hit = next((p for p in self.curve if p.accuracy >= th), None)
            reached[_th_key(th)] = (
                None if hit is None else {"seconds": hit.train_s, "env_steps": hit.env_steps}
            )
        return {
            "thresholds": reached,
            "final_accuracy": self.curve[-1].accuracy if self.curve else None,
            "best_accuracy": max((p.accuracy for p in self.curve), default=None),
            "train_s": round(self.train_s, 3),
            "env_steps": self.env_steps,
            "iterations": self.iterations,
            "steps_per_s": round(self.env_steps / self.train_s, 1) if self.train_s > 0 else None,
            "eval_s_total": round(sum(p.eval_s for p in self.curve), 3),
            # Collector time while this side's clock ran (part of train_s).
            **GC_CLOCK.report(self.name),
            "stop_reason": self.stop_reason,
            "curve": [vars(p) for p in self.curve],
        }


def _th_key(th: float) -> str:
    return f"{th:g}"


# --------------------------------------------------------------------------------------------
# SB3 side.


class FeedbackReward(gym.Wrapper):
    """Episode-end feedback for SB3, as `FeedbackCallback` does it under RLlib.

    At each episode end: an `EpisodeRecord` from the step infos and actions
    (`EpisodeRecord.from_infos`, the project's one reader of the info contract), the config's
    rater through a `FeedbackEngine` (so `rate_fraction` and `label_budget` hold too), and
    `shape_rewards`: the final step pays `env_weight * r_T + feedback_weight * label`, earlier
    steps `env_weight * r_t`. One engine is shared by the wrappers of one vector env, like
    the one engine of an RLlib EnvRunner. With feedback off the env's rewards pass unchanged.
    """

    def __init__(self, env: gym.Env, engine: FeedbackEngine | None, stream: int) -> None:
        super().__init__(env)
        self.engine = engine
        self.stream = stream
        self._episodes = 0
        self._infos: list[dict[str, Any]] = []
        self._actions: list[int] = []
        self._rewards: list[float] = []
        self._image: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._infos, self._actions, self._rewards = [], [], []
        self._image = obs.get("image") if isinstance(obs, Mapping) else None
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.engine is None:
            return obs, reward, terminated, truncated, info
        self._infos.append(info)
        self._actions.append(int(action))
        self._rewards.append(float(reward))
        if not (terminated or truncated):
            return obs, self.engine.config.env_weight * float(reward), terminated, truncated, info
        record = EpisodeRecord.from_infos(
            episode_id=f"sb3-{self.stream}-{self._episodes}",
            step_infos=self._infos,
            actions=self._actions,
            env_runner_id=self.stream,
            image=self._image,
        )
        self._episodes += 1
        outcome = self.engine.process(record)
        shaped = shape_rewards(
            self._rewards,
            outcome.feedback_reward,
            env_weight=self.engine.config.env_weight,
            feedback_weight=self.engine.config.feedback_weight,
        )
        info = {**info, "feedback_reward": outcome.feedback_reward}
        return obs, shaped[-1], terminated, truncated, info


def check_sb3_support(cfg: ExperimentConfig) -> None:
    """Refuse settings the SB3 side cannot reproduce."""
    fb, m = cfg.feedback, cfg.model
    problems = []
    if fb.enabled and fb.source != "rater":
        problems.append("feedback.source must be 'rater' (no reward model on the SB3 side)")
    if fb.enabled and (fb.use_hub or fb.human_store or fb.human_blocking):
        problems.append("feedback hub / human labels are RLlib-only")
    if fb.enabled and fb.kl_coeff > 0:
        problems.append("feedback.kl_coeff > 0 (reference-policy KL) is RLlib-only")
    if m.contrastive_weight > 0:
        problems.append("model.contrastive_weight > 0 (InfoNCE loss) is RLlib-only")
    if problems:
        raise SystemExit("SB3 side cannot match this config: " + "; ".join(problems))


def total_envs(cfg: ExperimentConfig) -> int:
    """Envs RLlib samples from at once (every EnvRunner's): SB3's DummyVecEnv gets as many."""
    t = cfg.training
    return t.num_envs_per_env_runner * max(1, t.num_env_runners)


def make_sb3_env(cfg: ExperimentConfig, seed: int) -> Any:
    """The training vector env: `total_envs(cfg)` wrapped envs in a DummyVecEnv."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

    n_envs = total_envs(cfg)
    # The rater's stream (its seed) is the worker_index of the RLlib EnvRunner that samples:
    # 0 for the driver's own, 1 for a single remote one.
    stream = 1 if cfg.training.num_env_runners > 0 else 0
    engine = FeedbackEngine(cfg.feedback, stream=stream) if cfg.feedback.enabled else None

    def factory() -> gym.Env:
        return FeedbackReward(MyMultimodalEnv(cfg.env), engine, stream=stream)

    venv = DummyVecEnv([factory] * n_envs)
    # SB3 would transpose the (H, W, 3) uint8 image to channel-first; the project's trunk
    # wants it as the env gives it (it transposes and scales itself). A skipping
    # VecTransposeImage marks the env as "already handled", so SB3 leaves it alone.
    venv = VecTransposeImage(venv, skip=True)
    venv.seed(seed)
    return venv


def sb3_policy_classes(model_cfg: Any) -> tuple[type, type]:
    """The features extractor (the project's trunk) and a policy that keeps its init."""
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from mmrlhf.models.spaces import parse_observation_space
    from mmrlhf.models.trunk import build_trunk, maybe_compile

    class MultimodalTrunk(BaseFeaturesExtractor):
        """`MultimodalModel`'s trunk: text encoder + image encoder + fusion -> (B, F). The
        layer norm each project head starts with is in SB3's policy and value MLPs
        (`TrunkInitPolicy`), one each: a norm shared by both, which this class had until
        2026-12-07, also took the value loss's gradients into the policy's input."""

        def __init__(self, observation_space: gym.spaces.Dict) -> None:
            layout = parse_observation_space(observation_space)
            text, image, fusion = build_trunk(layout, model_cfg)
            super().__init__(observation_space, features_dim=fusion.output_dim)
            self.text_encoder, self.image_encoder, self.fusion = text, image, fusion
            # model.compile_trunk compiles the same part as in MultimodalModel.
            self._features = maybe_compile(self._run_trunk, model_cfg)

        def _run_trunk(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
            return self.fusion(self.text_encoder(text), self.image_encoder(image))

        def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
            # SB3 hands Box observations over as float: text ids back to long; the image
            # stays 0..255 (normalize_images=False), (B, H, W, 3), as the trunk expects.
            return self._features(obs["text"].long(), obs["image"])

    class TrunkInitPolicy(MultiInputActorCriticPolicy):
        """SB3's ortho_init re-initialises every Linear/Conv2d, the features extractor's too
        (BERT, CNN); keep the trunk's own init and let SB3 initialise only the heads."""

        def _build_mlp_extractor(self) -> None:
            """SB3's MLPs, each after its own layer norm, as the project's heads."""
            super()._build_mlp_extractor()
            extractor = self.mlp_extractor
            for name in ("policy_net", "value_net"):
                layers = getattr(extractor, name)
                setattr(extractor, name, torch.nn.Sequential(
                    torch.nn.LayerNorm(self.features_dim), *layers
                ))  # fmt: skip

        def _build(self, lr_schedule: Any) -> None:
            extractors = {
                id(m): m
                for m in (
                    self.features_extractor,
                    self.pi_features_extractor,
                    self.vf_features_extractor,
                )
            }
            saved = [(m, copy.deepcopy(m.state_dict())) for m in extractors.values()]
            super()._build(lr_schedule)
            for module, state in saved:
                module.load_state_dict(state)

    return MultimodalTrunk, TrunkInitPolicy


# The project's heads: layer norm (prepended by TrunkInitPolicy), then a ReLU MLP.
HEAD_ACTIVATION = torch.nn.ReLU


def sb3_optimizer(weight_decay: float) -> tuple[type[torch.optim.Optimizer], dict[str, float]]:
    """The project learner's optimizer: Adam, or AdamW when `weight_decay` > 0; eps as torch's."""
    if weight_decay > 0:
        return torch.optim.AdamW, {"eps": 1e-8, "weight_decay": weight_decay}
    return torch.optim.Adam, {"eps": 1e-8}


def sb3_settings(cfg: ExperimentConfig) -> dict[str, Any]:
    """SB3 PPO keyword arguments matched to the config (plain values, for the report)."""
    t, m = cfg.training, cfg.model
    n_envs = total_envs(cfg)
    optimizer, optimizer_kwargs = sb3_optimizer(t.weight_decay)
    if t.train_batch_size % n_envs:
        logger.warning(
            "train_batch_size %d is not a multiple of %d envs: SB3 rolls out %d steps",
            t.train_batch_size,
            n_envs,
            (t.train_batch_size // n_envs) * n_envs,
        )
    return {
        "n_envs": n_envs,
        "n_steps": max(1, t.train_batch_size // n_envs),
        "batch_size": t.minibatch_size,
        "n_epochs": t.num_epochs,
        "learning_rate": t.lr,
        "gamma": t.gamma,
        "gae_lambda": t.lambda_,
        "clip_range": t.clip_param,
        "ent_coef": t.entropy_coeff,
        "vf_coef": t.vf_loss_coeff,
        "max_grad_norm": t.grad_clip if t.grad_clip is not None else float("inf"),
        "normalize_advantage": True,
        "clip_range_vf": None,
        "target_kl": None,
        "policy_kwargs": {
            "net_arch": {"pi": list(m.hidden_sizes), "vf": list(m.hidden_sizes)},
            "activation_fn": HEAD_ACTIVATION.__name__,
            "features": "trunk; a LayerNorm at the start of each head",
            "share_features_extractor": m.share_encoders,
            "compile_trunk": m.compile_trunk,
            "normalize_images": False,
            "ortho_init": "heads only",
            "optimizer": f"{optimizer.__name__}"
            f"({', '.join(f'{k}={v}' for k, v in optimizer_kwargs.items())})",
        },
    }


class SB3Trainer:
    """SB3 PPO trained one rollout + update at a time (`learn` continued; constant lr and
    clip range, so consecutive calls are one long `learn`)."""

    name = "sb3"

    def __init__(self, cfg: ExperimentConfig, args: argparse.Namespace, seed: int) -> None:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.logger import Logger

        check_sb3_support(cfg)
        if args.sb3_compile != "config":  # compile SB3's trunk apart from RLlib's
            cfg = cfg.with_overrides({"model.compile_trunk": args.sb3_compile == "on"})
        self.settings = sb3_settings(cfg)
        trunk_cls, policy_cls = sb3_policy_classes(cfg.model)
        t0 = time.perf_counter()
        self.venv = make_sb3_env(cfg, seed)
        kwargs = {k: v for k, v in self.settings.items() if k not in ("n_envs", "policy_kwargs")}
        optimizer, optimizer_kwargs = sb3_optimizer(cfg.training.weight_decay)
        self.model = PPO(
            policy_cls,
            self.venv,
            policy_kwargs={
                "features_extractor_class": trunk_cls,
                "net_arch": self.settings["policy_kwargs"]["net_arch"],
                "activation_fn": HEAD_ACTIVATION,
                "share_features_extractor": cfg.model.share_encoders,
                "normalize_images": False,
                "optimizer_class": optimizer,
                "optimizer_kwargs": optimizer_kwargs,
            },
            seed=seed,
            device="cpu",
            verbose=0,
            **kwargs,
        )
        # Without a logger of its own, every `learn` call (one per iteration here) makes an
        # empty SB3-<time> folder in the temp directory (so does `configure(None, [])`).
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.build_s = time.perf_counter() - t0
        self.batch = self.settings["n_steps"] * self.settings["n_envs"]

        class RolloutTimer(BaseCallback):
            """Time inside rollouts (the rest of the clock is mostly PPO updates)."""

            sample_s = 0.0
            _t0 = 0.0

            def _on_rollout_start(self) -> None:
                self._t0 = time.perf_counter()

            def _on_rollout_end(self) -> None:
                self.sample_s += time.perf_counter() - self._t0

            def _on_step(self) -> bool:
                return True

        self.timer = RolloutTimer()
        self.proto = make_protocol(self.name, self._act, cfg, args)

    def _act(self, obs: ObsBatch) -> np.ndarray:
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions)

    def step(self) -> bool:
        """One rollout + PPO update on the clock; True to train on."""
        self.model.learn(
            total_timesteps=self.batch,
            callback=self.timer,
            reset_num_timesteps=False,
            log_interval=None,
        )
        return self.proto.boundary(self.model.num_timesteps)

    def close(self, ths: Sequence[float]) -> dict[str, Any]:
        self.proto.finish()
        self.venv.close()
        return {
            **self.proto.summary(ths),
            "sample_s": round(self.timer.sample_s, 3),
            "build_s": round(self.build_s, 3),
            "torch_threads": {"main": torch.get_num_threads()},
            "settings": self.settings,
        }


# --------------------------------------------------------------------------------------------
# RLlib side.


def _worker_threads(_: Any) -> int:
    import torch as _torch

    return _torch.get_num_threads()


class RLlibTrainer:
    """`build_ppo_config(cfg).build_algo()` trained one `algo.train()` at a time."""

    name = "rllib"

    def __init__(self, cfg: ExperimentConfig, args: argparse.Namespace) -> None:
        import ray

        from mmrlhf.trainers.phase_timer import PhaseTimer
        from mmrlhf.trainers.ppo import build_ppo_config

        # EnvRunner processes inherit OMP_NUM_THREADS (set in main) and size torch's pool by it.
        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        t0 = time.perf_counter()
        self.algo = build_ppo_config(cfg).build_algo()
        self.build_s = time.perf_counter() - t0
        self.threads = {"driver": torch.get_num_threads()}
        try:
            remote = self.algo.env_runner_group.foreach_env_runner(
                _worker_threads, local_env_runner=False
            )
            self.threads.update({f"env_runner_{i + 1}": n for i, n in enumerate(remote)})
        except Exception:  # A report detail; never lose the run over it.
            logger.exception("could not read the EnvRunners' torch threads")
        self.row: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        # Seconds of each algo.train() call and, within it, of the driver's EnvRunner's
        # `sample` (num_env_runners 0) and the LearnerGroup's `update`: RLlib's timers are
        # exponential moving averages (coefficient 0.01, started at the first iteration's
        # value), not means.
        self.phases = PhaseTimer(self.algo)
        self.proto = make_protocol(self.name, self._act, cfg, args)

    def _act(self, obs: ObsBatch) -> np.ndarray:
        from ray.rllib.core.columns import Columns

        module = self.algo.get_module()
        batch = {Columns.OBS: {k: torch.from_numpy(v) for k, v in obs.items()}}
        with torch.no_grad():
            out = module.forward_inference(batch)
        return out[Columns.ACTION_DIST_INPUTS].argmax(dim=-1).numpy()

    def step(self) -> bool:
        """One `algo.train()` on the clock; True to train on."""
        from mmrlhf.trainers.metrics import summarize

        self.phases.start()
        self.result = self.algo.train()
        self.phases.stop()
        self.row = summarize(self.result)
        return self.proto.boundary(int(self.row["env_steps"] or 0))

    def close(self, ths: Sequence[float]) -> dict[str, Any]:
        import ray

        try:
            self.proto.finish()
            return {
                **self.proto.summary(ths),
                "build_s": round(self.build_s, 3),
                "torch_threads": self.threads,
                "last_train_accuracy": self.row.get("accuracy"),
                "train_call_s": _spread(self.phases.periods),
                # The driver's sampling calls (num_env_runners 0) and Learner updates, timed
                # here per iteration (0 where not wrapped).
                "sample_call_s": _spread(self.phases.history["sample"]),
                "update_call_s": _spread(self.phases.history["update"]),
                # RLlib's own per-iteration timers, exponentially smoothed (not totals).
                "timers_smoothed": {
                    k: round(float(v), 4)
                    for k, v in (self.result.get("timers") or {}).items()
                    if isinstance(v, int | float)
                },
            }
        finally:
            self.algo.stop()
            ray.shutdown()


def _spread(seconds: Sequence[float]) -> dict[str, float | None]:
    """Mean, median, first and last of per-iteration seconds (None when there are none)."""
    if not seconds:
        return {"mean": None, "median": None, "first": None, "last": None}
    return {
        "mean": round(float(np.mean(seconds)), 4),
        "median": round(float(np.median(seconds)), 4),
        "first": round(seconds[0], 4),
        "last": round(seconds[-1], 4),
    }


Trainer = SB3Trainer | RLlibTrainer


def train_sequentially(trainers: Sequence[Trainer]) -> None:
    """Each framework to its stop rule, one after the other."""
    for trainer in trainers:
        print(f"\n=== {trainer.name} ===", flush=True)
        trainer.proto.start()
        while trainer.step():
            pass


def train_interleaved(trainers: Sequence[Trainer]) -> None:
    """Take turns, one evaluation period each, until every framework met its stop rule.

    This machine's speed drifts by tens of percent over minutes; taking turns every
    `--eval-every-s` seconds of training gives both frameworks the same spells.
    """
    for trainer in trainers:
        trainer.proto.start()
        trainer.proto.pause()
    live = list(trainers)
    while live:
        for trainer in list(live):
            trainer.proto.resume()
            evaluations, going = trainer.proto.evaluations, True
            while going and trainer.proto.evaluations == evaluations:
                going = trainer.step()
            if going:
                trainer.proto.pause()
            else:
                live.remove(trainer)


# --------------------------------------------------------------------------------------------
# Driver.


def thresholds(args: argparse.Namespace) -> list[float]:
    """The test accuracies timed: `--thresholds` plus `--target`, ascending."""
    return sorted({*args.thresholds, args.target})


def make_protocol(
    name: str, act: ActFn, cfg: ExperimentConfig, args: argparse.Namespace
) -> Protocol:
    return Protocol(
        name=name,
        act=act,
        env_cfg=cfg.env.model_copy(update={"split": "test"}),
        target=args.target,
        max_train_s=args.max_minutes * 60.0,
        eval_every_s=args.eval_every_s,
        eval_episodes=args.eval_episodes,
        eval_seed=args.eval_seed,
        eval_batch=args.eval_batch,
    )


def ratios(results: Mapping[str, Mapping[str, Any]], ths: Sequence[float]) -> dict[str, Any]:
    """RLlib / SB3 for each threshold both reached (seconds and env steps), and steps/s."""
    if not all(f in results for f in FRAMEWORKS):
        return {}
    out: dict[str, Any] = {"seconds": {}, "env_steps": {}}
    for th in ths:
        key = _th_key(th)
        r, s = results["rllib"]["thresholds"][key], results["sb3"]["thresholds"][key]
        both = r is not None and s is not None
        out["seconds"][key] = (
            round(r["seconds"] / s["seconds"], 3) if both and s["seconds"] > 0 else None
        )
        out["env_steps"][key] = (
            round(r["env_steps"] / s["env_steps"], 3) if both and s["env_steps"] > 0 else None
        )
    r_sps, s_sps = results["rllib"]["steps_per_s"], results["sb3"]["steps_per_s"]
    out["steps_per_s"] = round(r_sps / s_sps, 3) if r_sps and s_sps else None
    return out


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(
    results: Mapping[str, Mapping[str, Any]], rat: Mapping[str, Any], ths: Sequence[float]
) -> None:
    names = [f for f in FRAMEWORKS if f in results]
    print()
    header = "threshold".ljust(10) + "".join(f"{n + ' steps':>14}{n + ' s':>11}" for n in names)
    if rat:
        header += f"{'rllib/sb3 s':>13}"
    print(header)
    for th in ths:
        key = _th_key(th)
        line = f"{key:<10}"
        for n in names:
            hit = results[n]["thresholds"][key] or {}
            steps, secs = _fmt(hit.get("env_steps"), ","), _fmt(hit.get("seconds"), ".1f")
            line += f"{steps:>14}{secs:>11}"
        if rat:
            line += f"{_fmt(rat['seconds'][key], '.2f'):>13}"
        print(line)
    print()
    for n in names:
        r = results[n]
        print(
            f"{n:<6} final test acc {_fmt(r['final_accuracy'], '.3f')} | "
            f"{r['env_steps']:,} steps in {r['train_s']:.1f} s = {_fmt(r['steps_per_s'], ',.0f')} "
            f"steps/s | {r['iterations']} iterations | build {r['build_s']:.1f} s | "
            f"eval {r['eval_s_total']:.1f} s | {r['stop_reason']}"
        )
    if rat and rat.get("steps_per_s"):
        print(f"throughput rllib/sb3: {rat['steps_per_s']:.2f}")


def versions() -> dict[str, str]:
    import ray
    import stable_baselines3

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gym.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }


def git_state() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="experiment YAML")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. training.lr=3e-4 (repeatable)",
    )
    p.add_argument("--only", choices=FRAMEWORKS, help="run one side only")
    p.add_argument(
        "--schedule",
        choices=("interleaved", "sequential"),
        default="interleaved",
        help="take turns every evaluation period (default), or train SB3 then RLlib",
    )
    p.add_argument("--target", type=float, default=0.95, help="test accuracy to reach")
    p.add_argument("--max-minutes", type=float, default=20.0, help="training clock cap per side")
    p.add_argument("--eval-every-s", type=float, default=15.0, help="training seconds per eval")
    p.add_argument("--eval-episodes", type=int, default=500, help="test episodes per eval")
    p.add_argument("--eval-seed", type=int, default=10_000, help="seed of the first test episode")
    p.add_argument("--eval-batch", type=int, default=100, help="episodes played at once in eval")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: training.seed)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the main process, which runs SB3 and RLlib's driver and "
        "Learner (default: training.torch_threads, else torch's own)",
    )
    p.add_argument(
        "--runner-threads",
        type=int,
        default=None,
        help="torch threads of each remote EnvRunner (default: --threads, else 1)",
    )
    p.add_argument(
        "--sb3-compile",
        choices=("config", "on", "off"),
        default="config",
        help="torch.compile SB3's trunk as the config's model.compile_trunk says (as RLlib's), "
        "or on / off regardless",
    )
    p.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=list(BASE_THRESHOLDS),
        help="test accuracies to time besides --target",
    )
    p.add_argument("--out", help="write the results here as JSON")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    seed = args.seed if args.seed is not None else (cfg.training.seed or 0)
    cfg = cfg.with_overrides({"training.seed": seed})
    threads = args.threads or cfg.training.torch_threads
    # Ray's worker processes inherit OMP_NUM_THREADS and size torch's pool by it.
    os.environ["OMP_NUM_THREADS"] = str(args.runner_threads or threads or 1)
    if threads is not None:
        torch.set_num_threads(threads)
    else:  # each framework's own default: torch uses every core in the training process
        threads = torch.get_num_threads()

    t = cfg.training
    matched = {
        "n_envs": total_envs(cfg),
        "train_batch_size": t.train_batch_size,
        "minibatch_size": t.minibatch_size,
        "num_epochs": t.num_epochs,
        "lr": t.lr,
        "gamma": t.gamma,
        "lambda_": t.lambda_,
        "clip_param": t.clip_param,
        "entropy_coeff": t.entropy_coeff,
        "vf_loss_coeff": t.vf_loss_coeff,
        "grad_clip": t.grad_clip,
        "hidden_sizes": list(cfg.model.hidden_sizes),
        "share_encoders": cfg.model.share_encoders,
    }
    print(f"config {args.config} {args.overrides or ''}")
    print(f"matched: {matched}; seed {seed}; torch threads/process {threads}", flush=True)

    names = [name for name in FRAMEWORKS if not args.only or args.only == name]
    trainers: list[Trainer] = [
        SB3Trainer(cfg, args, seed) if name == "sb3" else RLlibTrainer(cfg, args)
        for name in names
    ]
    if args.schedule == "interleaved" and len(trainers) > 1:
        train_interleaved(trainers)
    else:
        train_sequentially(trainers)
    results = {trainer.name: trainer.close(thresholds(args)) for trainer in trainers}
    rat = ratios(results, thresholds(args))
    print_table(results, rat, thresholds(args))

    if args.out:
        report = {
            "command": [sys.executable, *sys.argv],
            "config_path": args.config,
            "overrides": args.overrides,
            "config": cfg.model_dump(mode="json"),
            "matched": matched,
            "protocol": {
                "target": args.target,
                "thresholds": thresholds(args),
                "max_minutes": args.max_minutes,
                "eval_every_s": args.eval_every_s,
                "eval_episodes": args.eval_episodes,
                "eval_seed": args.eval_seed,
                "eval_split": "test",
                "order": [f for f in FRAMEWORKS if f in results],
                "schedule": args.schedule,
            },
            "seed": seed,
            "threads": threads,
            "versions": versions(),
            "git": git_state(),
            "results": results,
            "ratio_rllib_over_sb3": rat,
        }
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

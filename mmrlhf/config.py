"""The typed experiment config: one YAML file drives `train`, `tune` and `submit`.

    cfg = load_config("configs/quickstart.yaml", ["feedback.rater=noisy", "feedback.sigma=0.5"])

Sections: `env` (EnvConfig), `model` (ModelConfig), `feedback` (FeedbackConfig), `training`
(PPO and EnvRunner settings), `stop`, `checkpoint`, `tune`. An unknown key anywhere is rejected
with its dotted path and close matches; `--set a.b=value` overrides any field (values are parsed
as YAML). This module only validates; `trainers/ppo.py` turns it into RLlib's config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmrlhf.envs.config import EnvConfig
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.models.config import ModelConfig
from mmrlhf.validation import explain


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingConfig(_Section):
    """PPO hyperparameters and how sampling is laid out over processes.

    `num_env_runners=0` samples in the driver (what `--debug` forces); `num_learners=0` trains in
    the driver. `torch_threads` sets torch's intra-op threads in the process that runs the
    Learner and local sampling (the driver, or a Tune trial); None keeps torch's default (all
    cores: synchronous PPO's EnvRunners sit idle while the Learner trains). EnvRunner actors
    use `num_cpus_per_env_runner` threads, as Ray sets them.

    `train_batch_size` and `minibatch_size` are totals: with `num_learners` > 1 each Learner
    actor (one CPU each) takes an equal share of both, and the gradients are averaged across
    them (data parallel), so one update still follows `minibatch_size` env steps whatever
    the number of Learners.
    """

    lr: float = Field(3e-4, gt=0)
    gamma: float = Field(0.99, ge=0, le=1)
    lambda_: float = Field(0.95, ge=0, le=1)
    clip_param: float = Field(0.2, gt=0)
    entropy_coeff: float = Field(0.01, ge=0)
    vf_loss_coeff: float = Field(0.5, ge=0)
    grad_clip: float | None = Field(0.5, gt=0)
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="Decoupled weight decay (AdamW) of the policy's parameters; 0 = Adam.",
    )
    advantage_norm: Literal["batch", "minibatch"] = Field(
        "batch",
        description="Where advantages are standardised: over the train batch (RLlib's "
        "GAE) or, in addition, over each minibatch's rows before the loss (as SB3 does).",
    )
    kl_coeff: float = Field(
        0.2,
        ge=0,
        description="Initial coefficient of PPO's adaptive KL penalty between the sampling "
        "and the updated policy (RLlib's kl_coeff); 0 = clipped PPO only. Not the RLHF "
        "penalty toward a reference policy (feedback.kl_coeff).",
    )
    kl_target: float = Field(0.01, gt=0, description="KL the adaptive penalty steers toward.")
    vf_clip_param: float = Field(10.0, gt=0, description="Clip for the value loss.")
    train_batch_size: int = Field(512, ge=1)
    minibatch_size: int = Field(128, ge=1)
    num_epochs: int = Field(4, ge=1)
    num_env_runners: int = Field(1, ge=0)
    num_envs_per_env_runner: int = Field(16, ge=1)
    rollout_fragment_length: int | Literal["auto"] = "auto"
    num_learners: int = Field(0, ge=0)
    num_cpus_per_env_runner: float = Field(1.0, ge=0)
    torch_threads: int | None = Field(None, ge=1)
    seed: int | None = 0
    restart_failed_env_runners: bool = True
    gc_freeze: bool = Field(
        True,
        description="gc.freeze() in the driver once the algorithm is built and after its "
        "first two iterations, in each remote EnvRunner once its env is built and after its "
        "first two samples: Python's collector then no longer walks the libraries, models and "
        "compiled graphs on every full pass, which RLlib's per-episode objects trigger "
        "often (mmrlhf.trainers.gc_freeze).",
    )
    overlap_sampling: bool = Field(
        False,
        description="Remote EnvRunners sample the next batch while the Learner trains "
        "(OverlappedPPO: one iteration of policy lag); no effect with num_env_runners=0. "
        "Needs cores to spare: set torch_threads so the Learner leaves the EnvRunners theirs.",
    )
    overlap_rho_max: float = Field(
        1.0,
        ge=0,
        description="With overlap_sampling: decoupled PPO, the clip centred on the Learner's "
        "policy and the lagged samples importance-weighted, the weight truncated here; 0 = "
        "clip against the sampling policy, as plain PPO does.",
    )

    @property
    def learner_shares(self) -> int:
        """How many equal shares the batch sizes split into: one per Learner actor, or one
        for the driver's Learner (`num_learners=0`)."""
        return max(1, self.num_learners)

    @model_validator(mode="after")
    def _minibatch_fits(self) -> TrainingConfig:
        if self.minibatch_size > self.train_batch_size:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must be <= train_batch_size "
                f"({self.train_batch_size})"
            )
        for name in ("train_batch_size", "minibatch_size"):
            if getattr(self, name) % self.learner_shares:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must split evenly over num_learners "
                    f"({self.num_learners}): each Learner takes an equal share"
                )
        return self


class StopConfig(_Section):
    """When training ends: the first condition met wins. At least one must be set."""

    iterations: int | None = Field(20, ge=1)
    env_steps: int | None = Field(None, ge=1)
    accuracy: float | None = Field(None, gt=0, le=1)
    wall_time_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _something_stops(self) -> StopConfig:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("set at least one of iterations, env_steps, accuracy, wall_time_s")
        return self


class CheckpointConfig(_Section):
    """Checkpoint every `every` iterations (0 = only at the end) under the run directory."""

    every: int = Field(5, ge=0)
    keep: int = Field(2, ge=1)


class SearchDomain(_Section):
    """One Tune search dimension, e.g. `{grid: [concat, joint]}` or `{loguniform: [1e-4, 1e-3]}`."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchDomain:
        set_ = [k for k, v in self.model_dump().items() if v is not None]
        if len(set_) != 1:
            raise ValueError(
                f"a search dimension takes exactly one of grid, choice, uniform, loguniform; "
                f"got {set_ or 'none'}"
            )
        return self


class TuneConfig(_Section):
    """A Ray Tune sweep. `search_space` keys are dotted config paths (`model.fusion`);
    `metric` is one of the headline metric names in `mmrlhf.trainers.metrics.RESULT_KEYS`."""

    search_space: dict[str, SearchDomain] = Field(default_factory=dict)
    num_samples: int = Field(1, ge=1)
    metric: str = "accuracy"
    mode: Literal["max", "min"] = "max"
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(2, ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(1, ge=0)
    wandb_project: str | None = Field(
        None, description="Log trials to this W&B project (extra: mmrlhf[wandb])."
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="Log trials to this MLflow server or file:// store (mmrlhf[mlflow])."
    )


class ExperimentConfig(_Section):
    """Everything one experiment needs. `output_dir/name` holds its results and checkpoints."""

    name: str = "mmrlhf"
    output_dir: str = "results"
    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @model_validator(mode="before")
    @classmethod
    def _human_labels_in_run_dir(cls, data: Any) -> Any:
        # feedback.source=human without a store: people label into this run's directory,
        # where `mmrlhf label <run dir>` and the page `train` serves look for it.
        feedback = data.get("feedback") if isinstance(data, dict) else None
        wants_store = isinstance(feedback, dict) and feedback.get("source") == "human"
        if wants_store and not feedback.get("human_store"):
            name = data.get("name", cls.model_fields["name"].default)
            output_dir = data.get("output_dir", cls.model_fields["output_dir"].default)
            store = str(Path(output_dir) / name / "labels.sqlite")
            data = {**data, "feedback": {**feedback, "human_store": store}}
        return data

    @model_validator(mode="after")
    def _scene_queries_need_repeats(self) -> ExperimentConfig:
        fb = self.feedback
        if fb.source == "reward_model" and fb.query_group == "scene" and (
            self.env.scene_repeats < fb.query_k
        ):
            raise ValueError(
                f"feedback.query_group=scene compares {fb.query_k} answers to one scene, so "
                f"env.scene_repeats must be >= feedback.query_k ({fb.query_k}); got "
                f"{self.env.scene_repeats}. Raise env.scene_repeats or use query_group=prompt."
            )
        return self

    @model_validator(mode="after")
    def _floor_challengers_need_a_floor(self) -> ExperimentConfig:
        fb = self.feedback
        if fb.query_challengers == "floor" and self.model.policy_floor <= 0.0:
            raise ValueError(
                "feedback.query_challengers=floor draws challengers from the episodes the "
                "policy floor's uniform part answered, so model.policy_floor must be > 0 "
                f"(got {self.model.policy_floor}). Set model.policy_floor or use "
                "query_challengers=any."
            )
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def with_overrides(self, overrides: Mapping[str, Any]) -> ExperimentConfig:
        """A copy with dotted-path overrides applied and validated again."""
        data = self.model_dump(mode="json")
        for key, value in overrides.items():
            set_dotted(data, key, value)
        return validate_config(data)


class ConfigError(ValueError):
    """A bad experiment config; the message names each bad key and what is allowed."""


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """`set_dotted(d, "a.b", 1)` sets `d["a"]["b"] = 1`, creating sections as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`["a.b=1", "c=[x, y]"]` to `{"a.b": 1, "c": ["x", "y"]}`; values parse as YAML."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = _parse_value(value)
    return out


def _parse_value(text: str) -> Any:
    value = yaml.safe_load(text) if text.strip() else None
    if isinstance(value, str):
        # YAML 1.1 reads "1e-3" as a string; users mean the number.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def validate_config(data: Mapping[str, Any]) -> ExperimentConfig:
    """Validate a plain mapping into an `ExperimentConfig`, with one readable error."""
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(explain(err, ExperimentConfig, "experiment")) from None


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> ExperimentConfig:
    """Read a YAML experiment config (or defaults when `path` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} not found")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping, got {type(loaded).__name__}")
        data = loaded
    pairs = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for key, value in pairs.items():
        set_dotted(data, key, value)
    return validate_config(data)

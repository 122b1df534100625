"""`tune`: a Ray Tune sweep over any experiment-config field, driven by `tune.Tuner`.

The search space lives in the YAML under `tune.search_space`, keyed by dotted config paths::

    tune:
      search_space:
        model.fusion: {grid: [concat, joint]}
        training.lr: {loguniform: [1e-4, 1e-3]}
      num_samples: 2
      scheduler: asha

Each trial validates its sampled overrides into a full `ExperimentConfig` (so a bad value fails
the trial with the usual message), builds PPO with `build_ppo_config`, and reports the headline
metrics (`mmrlhf.trainers.metrics`) each iteration, with a checkpoint every
`checkpoint.every` iterations. Failed trials retry from their last checkpoint
(`FailureConfig(max_failures)`); `resume=True` continues an interrupted sweep (`Tuner.restore`).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune as ray_tune
from ray.tune import Checkpoint

from mmrlhf.config import ExperimentConfig, SearchDomain, validate_config
from mmrlhf.trainers.metrics import RESULT_KEYS, summarize
from mmrlhf.trainers.ppo import build_ppo_config
from mmrlhf.trainers.train import apply_torch_threads, stop_reason

logger = logging.getLogger(__name__)


def to_tune_domain(domain: SearchDomain) -> Any:
    """One `SearchDomain` as a Tune sampler."""
    if domain.grid is not None:
        return ray_tune.grid_search(domain.grid)
    if domain.choice is not None:
        return ray_tune.choice(domain.choice)
    if domain.uniform is not None:
        return ray_tune.uniform(*domain.uniform)
    assert domain.loguniform is not None
    return ray_tune.loguniform(*domain.loguniform)


def trial_config(base: dict[str, Any], overrides: dict[str, Any]) -> ExperimentConfig:
    """The full config of one trial: `base` (a config dump) with sampled dotted overrides."""
    return validate_config(base).with_overrides(overrides)


def _trainable(params: dict[str, Any]) -> None:
    """One Tune trial: PPO under the sampled config, reporting every iteration."""
    cfg = trial_config(params["base"], params["overrides"])
    apply_torch_threads(cfg)
    algo = build_ppo_config(cfg).build_algo()
    try:
        start = ray_tune.get_checkpoint()
        if start is not None:
            with start.as_directory() as d:
                algo.restore_from_path(d)
        every = cfg.checkpoint.every or cfg.stop.iterations or 1
        while True:
            metrics = summarize(algo.train())
            done = bool(stop_reason(cfg, metrics, metrics["time_total_s"] or 0.0))
            metrics["done"] = done
            if done or metrics["iteration"] % every == 0:
                with tempfile.TemporaryDirectory() as tmp:
                    algo.save_to_path(tmp)
                    ray_tune.report(metrics, checkpoint=Checkpoint.from_directory(tmp))
            else:
                ray_tune.report(metrics)
            if done:
                break
    finally:
        algo.stop()


def logger_callbacks(cfg: ExperimentConfig) -> list[Any]:
    """Tune's own W&B / MLflow integrations, when the config asks for them.

    TensorBoard needs nothing: Tune's default loggers write event files into each trial dir.
    """
    tc = cfg.tune
    callbacks: list[Any] = []
    if tc.wandb_project:
        _require("wandb", "wandb_project")
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(WandbLoggerCallback(project=tc.wandb_project, group=cfg.name))
    if tc.mlflow_tracking_uri:
        _require("mlflow", "mlflow_tracking_uri")
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        callbacks.append(
            MLflowLoggerCallback(tracking_uri=tc.mlflow_tracking_uri, experiment_name=cfg.name)
        )
    return callbacks


def _require(package: str, field: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ValueError(
            f"tune.{field} needs the {package!r} package: pip install 'mmrlhf[{package}]'"
        )


def trial_resources(cfg: ExperimentConfig) -> ray_tune.PlacementGroupFactory:
    """CPUs one trial holds: its driver plus one bundle per EnvRunner."""
    t = cfg.training
    bundles = [{"CPU": 1.0}] + [{"CPU": t.num_cpus_per_env_runner}] * t.num_env_runners
    return ray_tune.PlacementGroupFactory(bundles)


@dataclass
class TuneSummary:
    """The sweep's trials (overrides, final metrics, checkpoint) and the best one."""

    experiment_dir: Path
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None

    def table(self) -> str:
        """A Markdown table of the trials, best first."""
        keys = sorted({k for t in self.trials for k in t["overrides"]})
        head = ["trial", *keys, "status", "iter", "accuracy", "return"]
        rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for t in self.trials:
            m = t["metrics"]
            cells = [t["trial_id"], *(str(t["overrides"].get(k, "")) for k in keys), t["status"]]
            cells += [str(m.get("iteration")), _fmt(m.get("accuracy")), _fmt(m.get("return_mean"))]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def tune(cfg: ExperimentConfig, *, resume: bool = False) -> TuneSummary:
    """Run (or, with `resume`, continue) the sweep described by `cfg.tune`."""
    tc = cfg.tune
    storage = Path(cfg.output_dir).resolve()
    experiment_dir = storage / cfg.name
    trainable = ray_tune.with_resources(_trainable, trial_resources(cfg))
    if resume:
        if not ray_tune.Tuner.can_restore(str(experiment_dir)):
            raise FileNotFoundError(f"no Tune experiment to resume at {str(experiment_dir)!r}")
        tuner = ray_tune.Tuner.restore(
            str(experiment_dir), trainable=trainable, resume_errored=True, resume_unfinished=True
        )
    else:
        space = {key: to_tune_domain(d) for key, d in tc.search_space.items()}
        scheduler = None
        if tc.scheduler == "asha":
            scheduler = ray_tune.schedulers.ASHAScheduler(
                time_attr="iteration",
                grace_period=tc.grace_period,
                max_t=cfg.stop.iterations or 1000,
            )
        tuner = ray_tune.Tuner(
            trainable,
            param_space={"base": cfg.model_dump(mode="json"), "overrides": space},
            tune_config=ray_tune.TuneConfig(
                metric=tc.metric,
                mode=tc.mode,
                num_samples=tc.num_samples,
                scheduler=scheduler,
                max_concurrent_trials=tc.max_concurrent_trials,
            ),
            run_config=ray_tune.RunConfig(
                name=cfg.name,
                storage_path=str(storage),
                failure_config=ray_tune.FailureConfig(max_failures=tc.max_failures),
                checkpoint_config=ray_tune.CheckpointConfig(num_to_keep=cfg.checkpoint.keep),
                callbacks=logger_callbacks(cfg),
                verbose=1,
            ),
        )
    grid = tuner.fit()
    trials = []
    for r in grid:
        trials.append(
            {
                "trial_id": Path(r.path).name if r.path else "?",
                "overrides": (r.config or {}).get("overrides", {}),
                "status": "ERROR" if r.error else "TERMINATED",
                "metrics": {k: (r.metrics or {}).get(k) for k in RESULT_KEYS},
                "checkpoint": r.checkpoint.path if r.checkpoint else None,
            }
        )
    trials.sort(key=lambda t: _sort_key(t, tc.metric, tc.mode))
    best = trials[0] if trials and trials[0]["status"] != "ERROR" else None
    return TuneSummary(experiment_dir=experiment_dir, trials=trials, best=best)


def _sort_key(trial: dict[str, Any], metric: str, mode: str) -> float:
    value = trial["metrics"].get(metric)
    if value is None:
        return float("inf")
    return -value if mode == "max" else value

"""`train`: one experiment, top to bottom, in the calling process.

Reading order: build the PPO config -> build the algorithm (restore if resuming) -> loop
`algo.train()` until a stop condition holds, logging a progress line, appending each
iteration's headline metrics to `progress.jsonl` and checkpointing every N iterations -> final
checkpoint, learning-curve PNG and `summary.json` in the run directory.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmrlhf.config import ExperimentConfig
from mmrlhf.trainers.metrics import progress_line, summarize
from mmrlhf.trainers.ppo import build_ppo_config

logger = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    run_dir: Path
    checkpoint: Path | None
    history: list[Row] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def final(self) -> Row:
        return self.history[-1] if self.history else {}

    def summary(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "stop_reason": self.stop_reason,
            "iterations": len(self.history),
            "final": self.final,
            "best_accuracy": max(
                (r["accuracy"] for r in self.history if r.get("accuracy") is not None),
                default=None,
            ),
        }


def debug_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """Everything in the driver process (no EnvRunner or Learner actors), fixed seed, so
    breakpoints and pdb work in the env, the model and the callbacks."""
    return cfg.with_overrides(
        {
            "training.num_env_runners": 0,
            "training.num_learners": 0,
            "training.seed": cfg.training.seed if cfg.training.seed is not None else 0,
        }
    )


def apply_torch_threads(cfg: ExperimentConfig) -> None:
    """Set this process's torch intra-op threads from `training.torch_threads` (if set)."""
    threads = cfg.training.torch_threads
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def stop_reason(cfg: ExperimentConfig, row: Row, elapsed_s: float) -> str:
    """The first stop condition `row` (after `elapsed_s` seconds) meets, or "" to go on."""
    s = cfg.stop
    if s.iterations is not None and row["iteration"] >= s.iterations:
        return f"iterations >= {s.iterations}"
    if s.env_steps is not None and (row["env_steps"] or 0) >= s.env_steps:
        return f"env_steps >= {s.env_steps}"
    if s.accuracy is not None and (row["accuracy"] or 0.0) >= s.accuracy:
        return f"accuracy >= {s.accuracy}"
    if s.wall_time_s is not None and elapsed_s >= s.wall_time_s:
        return f"wall_time_s >= {s.wall_time_s}"
    return ""


def eta_seconds(cfg: ExperimentConfig, row: Row, first_iter: int, elapsed: float) -> float | None:
    """Time left under the tightest known limit, from the pace so far."""
    done_iters = row["iteration"] - first_iter + 1
    if done_iters <= 0 or elapsed <= 0:
        return None
    per_iter = elapsed / done_iters
    estimates = []
    if cfg.stop.iterations is not None:
        estimates.append((cfg.stop.iterations - row["iteration"]) * per_iter)
    if cfg.stop.env_steps is not None and row.get("env_steps"):
        steps_per_s = row["env_steps"] / max(row.get("time_total_s") or elapsed, 1e-9)
        estimates.append((cfg.stop.env_steps - row["env_steps"]) / max(steps_per_s, 1e-9))
    if cfg.stop.wall_time_s is not None:
        estimates.append(cfg.stop.wall_time_s - elapsed)
    return max(0.0, min(estimates)) if estimates else None


def _prune(checkpoints: list[Path], keep: int) -> None:
    while len(checkpoints) > keep:
        shutil.rmtree(checkpoints.pop(0), ignore_errors=True)


def train(
    cfg: ExperimentConfig,
    *,
    debug: bool = False,
    resume: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run one experiment; return where its results and final checkpoint are.

    Args:
        cfg: the validated experiment config.
        debug: single-process debugging (see `debug_config`).
        resume: a checkpoint directory written by an earlier run; the iteration count goes on
            from it.
        progress: receives one progress line per iteration (default: logged at INFO).
    """
    if debug:
        cfg = debug_config(cfg)
    run_dir = cfg.run_dir
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    say = progress or logger.info

    apply_torch_threads(cfg)
    algo = build_ppo_config(cfg).build_algo()
    result = TrainResult(run_dir=run_dir, checkpoint=None)
    checkpoints: list[Path] = []
    label_app = _start_label_app(cfg, say)
    try:
        if resume is not None:
            algo.restore_from_path(str(Path(resume).resolve()))
            say(f"resumed from {resume} at iteration {algo.iteration}")
        first_iter = algo.iteration + 1
        started = time.monotonic()
        with (run_dir / "progress.jsonl").open("a") as log:
            while True:
                row = summarize(algo.train())
                result.history.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                elapsed = time.monotonic() - started
                eta = eta_seconds(cfg, row, first_iter, elapsed)
                say(progress_line(row, cfg.stop.iterations, eta))
                result.stop_reason = stop_reason(cfg, row, elapsed)
                every = cfg.checkpoint.every
                if result.stop_reason or (every and row["iteration"] % every == 0):
                    path = run_dir / "checkpoints" / f"iter_{row['iteration']:05d}"
                    algo.save_to_path(str(path.resolve()))
                    checkpoints.append(path)
                    _prune(checkpoints, cfg.checkpoint.keep)
                    result.checkpoint = path
                if result.stop_reason:
                    break
    finally:
        algo.stop()
        if label_app is not None:
            label_app.stop()
    say(f"stopped: {result.stop_reason}; checkpoint {result.checkpoint}")
    _write_outputs(result)
    return result


def _start_label_app(cfg: ExperimentConfig, say: Callable[[str], None]) -> Any:
    """Serve the labelling page beside training when people give the feedback."""
    fb = cfg.feedback
    if not (fb.enabled and fb.human_store and fb.human_app_port is not None):
        return None
    from mmrlhf.trainers.label_server import BackgroundLabelServer

    server = BackgroundLabelServer(fb.human_store, port=fb.human_app_port)
    say(f"labelling page: {server.url} (labels from {fb.human_store})")
    return server


def _write_outputs(result: TrainResult) -> None:
    from mmrlhf.trainers.plot import plot_runs

    try:
        png = plot_runs([result.run_dir], result.run_dir / "learning_curve.png")
    except Exception:  # A plot is a convenience; never lose a finished run over it.
        logger.exception("could not draw the learning curve")
        png = None
    summary = {**result.summary(), "learning_curve": str(png) if png else None}
    (result.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))

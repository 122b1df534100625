"""`mmrlhf train` end to end: --debug run, checkpoints, resume, eval and plot on its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmrlhf.cli import main
from mmrlhf.config import ExperimentConfig

pytestmark = pytest.mark.ray


def _write(cfg: ExperimentConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_train_debug_resume_eval_plot(ray_session: None, tiny_cfg: ExperimentConfig,
                                      tmp_path: Path) -> None:  # fmt: skip
    config = _write(tiny_cfg, tmp_path / "exp.yaml")
    out = tmp_path / "train.json"
    args = ["train", str(config), "--debug", "--set", "stop.iterations=2", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads(out.read_text())
    run_dir = Path(summary["run_dir"])
    history = [json.loads(x) for x in (run_dir / "progress.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in history] == [1, 2]
    assert history[-1]["env_steps"] >= 128 and history[-1]["accuracy"] is not None
    assert summary["stop_reason"] == "iterations >= 2"
    ckpt = Path(summary["checkpoint"])
    assert ckpt.name == "iter_00002" and ckpt.is_dir()
    assert Path(summary["learning_curve"]).stat().st_size > 1000
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["num_env_runners"] == 0  # --debug: all in the driver

    # Resume continues the iteration count from the checkpoint.
    out2 = tmp_path / "resume.json"
    args = ["train", str(config), "--debug", "--resume", str(ckpt),
            "--set", "stop.iterations=3", "--out", str(out2)]  # fmt: skip
    assert main(args) == 0
    resumed = json.loads(out2.read_text())
    assert resumed["iterations"] == 1 and resumed["final"]["iteration"] == 3

    # Eval on the checkpoint reports the task's metrics.
    ev = tmp_path / "eval.json"
    assert main(["eval", resumed["checkpoint"], "--episodes", "20", "--out", str(ev)]) == 0
    metrics = json.loads(ev.read_text())
    assert metrics["task"] == "vqa" and metrics["split"] == "test"
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["episodes"] == 20

    # The reward-hacking audit plays the checkpoint against a reward model of its env.
    from mmrlhf.trainers.reward_model import train_reward_model

    rm = train_reward_model(tiny_cfg.env, tmp_path / "rm", n_pairs=10, rounds=1)["checkpoint"]
    audit = tmp_path / "audit.json"
    args = ["reward-model", "audit", rm, "--policy", resumed["checkpoint"], "--episodes", "20",
            "--out", str(audit)]  # fmt: skip
    assert main(args) == 0
    found = json.loads(audit.read_text())
    assert found["episodes"] == 20 and found["split"] == "train"
    assert found["wrong"] == round(20 * (1 - found["accuracy"]))
    assert 0 <= found["overrated"] <= found["wrong"]
    assert sum(n for _, _, n in found["top_wrong"]) <= found["wrong"]

    # Plot draws every run found under the results dir.
    png = tmp_path / "curves.png"
    assert main(["plot", str(tiny_cfg.output_dir), "--out", str(png)]) == 0
    assert png.stat().st_size > 1000

"""`mmrlhf tune`: a 2-trial sweep of 2 iterations each, through tune.Tuner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmrlhf.cli import main
from mmrlhf.config import ExperimentConfig

pytestmark = pytest.mark.ray


def test_two_trials(ray_session: None, tiny_cfg: ExperimentConfig, tmp_path: Path) -> None:
    data = tiny_cfg.model_dump(mode="json")
    data["training"]["num_env_runners"] = 0
    data["stop"] = {"iterations": 2}
    data["tune"] = {"search_space": {"model.fusion": {"grid": ["concat", "sum"]}}}
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "tune.json"
    assert main(["tune", str(config), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    trials = result["trials"]
    assert sorted(t["overrides"]["model.fusion"] for t in trials) == ["concat", "sum"]
    for t in trials:
        assert t["status"] == "TERMINATED"
        assert t["metrics"]["iteration"] == 2
        assert t["checkpoint"] and Path(t["checkpoint"]).is_dir()
    assert result["best"]["trial_id"] in {t["trial_id"] for t in trials}

    # --resume restores the finished experiment (Tuner.restore) instead of starting over.
    out2 = tmp_path / "resumed.json"
    assert main(["tune", str(config), "--resume", "--out", str(out2)]) == 0
    resumed = json.loads(out2.read_text())
    assert {t["trial_id"] for t in resumed["trials"]} == {t["trial_id"] for t in trials}
    assert all(t["metrics"]["iteration"] == 2 for t in resumed["trials"])

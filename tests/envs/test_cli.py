"""`mmrlhf env ...` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmrlhf.cli import main


def test_env_show_writes_a_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sheet.png"
    assert main(["env", "show", "--task", "vqa", "--episodes", "8", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.width > 4 * 64 and im.height > 2 * 64
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 8 and summary["policy"] == "random"


def test_env_show_with_oracle_scores_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["env", "show", "--task", "caption", "--policy", "oracle", "--episodes", "3"]
    assert main([*args, "--out", str(tmp_path / "c.png")]) == 0
    assert json.loads(capsys.readouterr().out)["mean_score"] == 1.0


def test_bad_config_exits_2_with_message(capsys: pytest.CaptureFixture) -> None:
    assert main(["env", "info", "--set", "num_objects=12"]) == 2
    assert "num_objects" in capsys.readouterr().err

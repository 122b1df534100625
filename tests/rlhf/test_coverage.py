"""Label coverage: which responses a label set has shown right or wrong (no ground truth)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from mmrlhf.cli import main
from mmrlhf.feedback.coverage import label_coverage
from mmrlhf.feedback.label_log import LabelLog
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel, RankingLabel, RatingLabel
from tests.rlhf.conftest import make_sample

WORDS = {"e0": "red", "e1": "blue", "e2": "blue", "e3": "square", "e4": "red", "e5": "left"}


@pytest.fixture
def samples() -> dict:
    return {
        i: replace(make_sample(i, seed=n), response=w) for n, (i, w) in enumerate(WORDS.items())
    }


LABELS = [
    PreferenceLabel("e0", "e1", 1.0),  # red good, blue bad
    PreferenceLabel("e2", "e4", 0.5, tie="both_bad"),  # blue bad, red bad
    PreferenceLabel("e1", "e3", 0.5),  # plain tie: shown only
    RankingLabel(("e3", "e5", "e0"), (0, 1, 1)),  # square best; left and red below it
    BinaryLabel("e5", False),  # left bad
    RatingLabel("e2", 0.5),  # shown only
]


def test_each_response_is_counted_as_the_labels_judged_it(samples: dict) -> None:
    cov = label_coverage(LABELS, samples)
    got = {r.response: (r.shown, r.good, r.bad) for r in cov.responses}
    assert got == {
        "red": (3, 1, 2),
        "blue": (4, 0, 2),
        "square": (2, 1, 0),
        "left": (2, 0, 2),
    }
    assert cov.labels == 6
    assert sorted(cov.shown_good) == ["red", "square"]
    # most often judged good first, then most often shown
    assert [r.response for r in cov.responses][:2] == ["red", "square"]


def test_a_label_naming_an_unknown_episode_is_refused(samples: dict) -> None:
    with pytest.raises(KeyError, match="e9"):
        label_coverage([PreferenceLabel("e0", "e9", 1.0)], samples)


def test_the_cli_reads_a_label_log(
    tmp_path: Path, samples: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    LabelLog(tmp_path / "log").append(LABELS[:2], samples)
    out = tmp_path / "coverage.json"
    assert main(["reward-model", "labels", str(tmp_path / "log"), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["responses_shown_good"] == 1
    assert data["by_response"]["red"] == {"shown": 2, "good": 1, "bad": 1}
    assert json.loads(capsys.readouterr().out) == data

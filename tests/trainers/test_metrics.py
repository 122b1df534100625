"""Headline metrics pulled out of RLlib's nested result dict."""

from __future__ import annotations

import math

from mmrlhf.trainers.metrics import progress_line, summarize


def test_summarize_reads_nested_paths_and_rlhf_label_mix() -> None:
    result = {
        "training_iteration": 3,
        "env_runners": {"accuracy": 0.5, "feedback/labels_lifetime": 40.0},
        "feedback": {"queries": 44, "ties": 30, "rm_version": 2, "rm_accuracy": math.nan},
    }
    row = summarize(result)
    assert row["iteration"] == 3 and row["accuracy"] == 0.5
    assert row["labels"] == 40 and isinstance(row["labels"], int)
    assert (row["label_queries"], row["label_ties"], row["rm_version"]) == (44, 30, 2)
    assert row["rm_accuracy"] is None  # nan (no pairs scored yet) is reported as missing
    assert row["env_steps"] is None  # absent from the result


def test_progress_line_shows_what_was_reported() -> None:
    line = progress_line(summarize({"training_iteration": 2, "env_runners": {"accuracy": 0.25}}),
                         total_iters=10, eta_s=None)  # fmt: skip
    assert "iter 2/10" in line and "0.250" in line

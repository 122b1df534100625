"""scripts/bench_vs_sb3_summary.py: medians of time-to-target where some runs never got there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.script_loader import load_script

summary = load_script("bench_vs_sb3_summary")


def _run(seed: int, sb3: float | None, rllib: float | None, minutes: float = 5.0) -> dict[str, Any]:
    def side(seconds: float | None) -> dict[str, Any]:
        hit = None if seconds is None else {"seconds": seconds, "env_steps": int(seconds * 100)}
        return {
            "thresholds": {"0.9": hit, "0.95": hit},
            "best_accuracy": 0.99 if hit else 0.8,
            "steps_per_s": 300.0,
        }

    return {
        "seed": seed,
        "protocol": {"max_minutes": minutes},
        "results": {"sb3": side(sb3), "rllib": side(rllib)},
    }


def test_unreached_runs_sort_after_every_reached_one() -> None:
    times = [(100.0, 300.0), (None, 240.0), (200.0, 300.0), (None, 300.0), (150.0, 300.0)]
    assert summary.censored_median(times) == (200.0, False)
    # The median lands on an unreached run: only a bound is known.
    assert summary.censored_median([(100.0, 300.0), (None, 240.0), (None, 300.0)]) == (
        240.0,
        True,
    )
    assert summary.censored_median([(100.0, 300.0), (200.0, 300.0)]) == (150.0, False)


def test_ratio_of_medians_only_when_both_are_numbers() -> None:
    runs = [_run(0, 100.0, None), _run(1, None, 180.0), _run(2, 200.0, 210.0)]
    out = summary.summarise(runs, 0.95)
    assert out["medians"]["sb3"] == {"seconds": 200.0, "lower_bound": False}
    assert out["medians"]["rllib"] == {"seconds": 210.0, "lower_bound": False}
    assert out["ratio_of_medians"] == pytest.approx(1.05)
    bounded = summary.summarise([_run(0, 100.0, None), _run(1, None, None)], 0.95)
    assert bounded["medians"]["rllib"]["lower_bound"] and bounded["ratio_of_medians"] is None


def test_an_untimed_target_is_refused_with_the_timed_ones() -> None:
    with pytest.raises(ValueError, match=r"did not time 0\.42 .*timed: 0\.9, 0\.95"):
        summary.summarise([_run(0, 100.0, 120.0)], 0.42)


def test_first_there_counts_an_unreached_side_as_slower() -> None:
    runs = [
        _run(0, 100.0, 120.0),  # sb3 first
        _run(1, 150.0, 90.0),  # rllib first
        _run(2, None, 280.0),  # only rllib got there
        _run(3, 200.0, None),  # only sb3 got there
        _run(4, None, None),
        _run(5, 50.0, 50.0),
    ]
    out = summary.summarise(runs, 0.95)
    assert out["first_there"] == {"rllib": 2, "sb3": 2, "tie": 1, "neither": 1}


def test_medians_compare_with_bounds_only_where_the_order_is_known() -> None:
    assert summary.rllib_at_or_below((100.0, False), (120.0, False)) is True
    assert summary.rllib_at_or_below((130.0, False), (120.0, False)) is False
    assert summary.rllib_at_or_below((290.0, False), (300.0, True)) is True
    assert summary.rllib_at_or_below((300.0, True), (10.0, False)) is False
    assert summary.rllib_at_or_below((300.0, True), (300.0, True)) is None


def test_bootstrap_shares_follow_the_runs() -> None:
    faster = [_run(s, 200.0, 100.0 + s) for s in range(5)]
    out = summary.bootstrap(summary.summarise(faster, 0.95)["runs"], 200)
    assert out["rllib_at_or_below"] == 1.0 and out["rllib_above"] == 0.0
    assert out["ratio_percentiles"]["5"] == pytest.approx(0.5, abs=0.011)
    # Half the seeds each way: the verdict is a coin toss, and the resamples say so.
    mixed = [_run(s, 100.0, 200.0) for s in range(5)]
    mixed += [_run(s, 200.0, 100.0) for s in range(5, 10)]
    shares = summary.bootstrap(summary.summarise(mixed, 0.95)["runs"], 2000, seed=1)
    assert 0.35 < shares["rllib_at_or_below"] < 0.65
    total = shares["rllib_at_or_below"] + shares["rllib_above"] + shares["unordered"]
    assert total == pytest.approx(1.0)
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        summary.bootstrap(summary.summarise(faster, 0.95)["runs"], 0)

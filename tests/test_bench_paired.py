"""scripts/bench_paired.py: the command line refuses pairs that cannot be compared."""

from __future__ import annotations

import pytest

from tests.script_loader import load_script

paired = load_script("bench_paired")


def test_variants_must_differ() -> None:
    with pytest.raises(SystemExit):
        paired.parse_args(["--set", "training.seed=1"])


def test_needs_timed_and_warmup_iterations() -> None:
    with pytest.raises(SystemExit):
        paired.parse_args(["--b", "model.compile_trunk=true", "--iterations", "0"])
    with pytest.raises(SystemExit):
        paired.parse_args(["--b", "model.compile_trunk=true", "--warmup", "0"])


def test_overrides_are_kept_per_variant() -> None:
    b = ["--b", "model.compile_trunk=true"]
    args = paired.parse_args(["--set", "training.seed=1", "--a", "model.fusion=concat", *b])
    assert args.common == ["training.seed=1"]
    assert args.a == ["model.fusion=concat"] and args.b == ["model.compile_trunk=true"]

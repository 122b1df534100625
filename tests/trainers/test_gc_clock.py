"""`GCClock`: collector passes are charged to the owner set at the time, none without one."""

from __future__ import annotations

import gc

from mmrlhf.trainers.gc_clock import GCClock


def test_passes_are_charged_to_the_current_owner() -> None:
    clock = GCClock()
    gc.disable()  # only the passes asked for below
    try:
        clock.owner = "a"
        gc.collect(0)
        gc.collect(2)
        clock.owner = None
        gc.collect()  # nobody's
        clock.owner = "b"
        gc.collect(1)
    finally:
        clock.close()
        gc.enable()
    gc.collect()  # after close: not timed
    assert clock.report("a")["gc_passes_by_generation"] == {"0": 1, "2": 1}
    assert clock.report("b")["gc_passes_by_generation"] == {"1": 1}
    assert clock.report("a")["gc_s"] >= 0.0 and clock.seconds["a"] > 0.0
    assert clock.report("nobody") == {"gc_s": 0.0, "gc_passes_by_generation": {}}
    assert clock._on_gc not in gc.callbacks

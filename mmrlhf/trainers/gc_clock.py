"""Seconds and passes of Python's cyclic garbage collector, charged to named owners (benches).

Several things measured in one process (two frameworks taking turns, or one algorithm with
and without `gc.freeze()`) share one collector: a pass set off by one's allocations walks
the objects of all. `GCClock` times each pass through `gc.callbacks` and charges it to the
owner set at the time (none while `owner` is None).
"""

from __future__ import annotations

import gc
import time
from typing import Any


class GCClock:
    """Collector seconds and passes per generation, per owner, while installed."""

    def __init__(self) -> None:
        self.owner: str | None = None
        self.seconds: dict[str, float] = {}
        self.passes: dict[str, dict[int, int]] = {}
        self._t0 = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self.owner is not None:
            self.seconds[self.owner] = (
                self.seconds.get(self.owner, 0.0) + time.perf_counter() - self._t0
            )
            gens = self.passes.setdefault(self.owner, {})
            gens[info["generation"]] = gens.get(info["generation"], 0) + 1

    def report(self, name: str) -> dict[str, Any]:
        """`gc_s` and `gc_passes_by_generation` of one owner (as the bench JSONs hold them)."""
        gens = self.passes.get(name, {})
        return {
            "gc_s": round(self.seconds.get(name, 0.0), 3),
            "gc_passes_by_generation": {str(g): n for g, n in sorted(gens.items())},
        }

    def close(self) -> None:
        """Stop timing (remove the callback)."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

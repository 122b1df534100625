"""Label budget bookkeeping: pure counters shared by the local path and the FeedbackHub.

- `LabelBudget` is the single source of truth for a total (held by one EnvRunner when there
  is no hub, or by the hub for all runners). It hands out labels in blocks with `reserve`.
- `LabelAllowance` is what an EnvRunner consults per episode: labels it may still spend. It
  refills from a `reserve` function (local budget or one hub round trip per block), so the
  per-episode cost stays a counter decrement.

Invariant (tested): labels spent never exceed the budget, however blocks are interleaved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class LabelBudget:
    """A total number of labels and how many were granted.

    Args:
        total: Labels allowed in all; None = unlimited.
    """

    total: int | None = None
    granted: int = 0

    def __post_init__(self) -> None:
        if self.total is not None and self.total < 0:
            raise ValueError(f"label budget must be >= 0 or None, got {self.total}")

    @property
    def remaining(self) -> int | None:
        """Labels not yet granted (None = unlimited)."""
        return None if self.total is None else self.total - self.granted

    @property
    def exhausted(self) -> bool:
        """True once every label has been granted."""
        return self.total is not None and self.granted >= self.total

    def reserve(self, n: int) -> int:
        """Grant up to `n` labels; return how many were granted (0 when exhausted)."""
        if n < 0:
            raise ValueError(f"cannot reserve a negative number of labels ({n})")
        remaining = self.remaining
        k = n if remaining is None else min(n, remaining)
        self.granted += k
        return k


@dataclass
class LabelAllowance:
    """Labels one EnvRunner may still spend, refilled block by block.

    Args:
        reserve: Called with a block size, returns how many labels were granted (at most that
            many). `LabelBudget.reserve` locally, a blocking hub call remotely.
        block: Labels asked for per refill.
        unlimited: Skip all bookkeeping (no budget configured).
    """

    reserve: Callable[[int], int]
    block: int = 32
    unlimited: bool = False
    held: int = 0
    spent: int = 0
    refills: int = 0
    exhausted: bool = False

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ValueError(f"block must be >= 1, got {self.block}")

    @classmethod
    def unbounded(cls) -> LabelAllowance:
        """An allowance that never runs out and never calls anyone."""
        return cls(reserve=lambda n: n, unlimited=True)

    @classmethod
    def local(cls, total: int | None, block: int = 32) -> LabelAllowance:
        """An allowance backed by a private `LabelBudget(total)` (no hub)."""
        if total is None:
            return cls.unbounded()
        return cls(reserve=LabelBudget(total).reserve, block=block)

    def available(self) -> bool:
        """Whether one more label may be spent; refills (one `reserve` call) when empty."""
        if self.unlimited or self.held > 0:
            return True
        if self.exhausted:
            # Once the source said no, do not ask again: a hub round trip per episode after
            # exhaustion would stall sampling for nothing.
            return False
        granted = self.reserve(self.block)
        self.refills += 1
        if granted <= 0:
            self.exhausted = True
            logger.info("label budget exhausted after %d labels from this runner", self.spent)
            return False
        self.held += granted
        return True

    def spend(self) -> None:
        """Spend one label (call only after `available()` returned True)."""
        if not self.unlimited:
            if self.held <= 0:
                raise RuntimeError("spend() without an available label; call available() first")
            self.held -= 1
        self.spent += 1

"""Shared fixtures. Ray tests use one session-scoped cluster (2 CPUs, no dashboard)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Keep torch from oversubscribing the 2 cores the Ray workers also use.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Start Ray once for the whole test session and shut it down at the end."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield
    if started:
        ray.shutdown()

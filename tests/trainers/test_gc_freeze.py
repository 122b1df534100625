"""`training.gc_freeze`: objects alive after setup leave the garbage collector's passes."""

from __future__ import annotations

import gc
import weakref

import pytest

from mmrlhf.config import load_config
from mmrlhf.trainers.gc_freeze import freeze_setup_objects
from tests.conftest import TINY


class Node:
    """A cyclic object with a weak reference."""

    def __init__(self) -> None:
        self.me = self


def _collector_tracks(obj: object) -> bool:
    # gc.get_objects() lists generations 0-2 only: frozen objects are in none of them.
    return any(o is obj for o in gc.get_objects())


def test_setup_objects_leave_the_collectors_generations() -> None:
    gc.unfreeze()
    built = [{"setup": True}]
    garbage = weakref.ref(Node())  # a cycle only the collector frees
    assert _collector_tracks(built) and garbage() is not None
    freeze_setup_objects(algorithm=None, metrics_logger=None)
    assert gc.get_freeze_count() > 0 and not _collector_tracks(built)
    assert garbage() is None  # setup's garbage was collected, not frozen
    made_later = [{"training": True}]
    assert _collector_tracks(made_later)  # what training makes is still collected


def test_the_option_installs_the_callbacks() -> None:
    from mmrlhf.trainers.ppo import build_ppo_config

    on = build_ppo_config(load_config(None, []))
    assert on.callbacks_on_algorithm_init is freeze_setup_objects
    assert on.callbacks_on_environment_created is freeze_setup_objects
    off = build_ppo_config(load_config(None, ["training.gc_freeze=false"]))
    assert off.callbacks_on_algorithm_init is None
    assert off.callbacks_on_environment_created is None


@pytest.mark.ray
def test_driver_and_env_runners_freeze_after_setup(ray_session: None) -> None:
    from mmrlhf.trainers.ppo import build_ppo_config

    gc.unfreeze()
    algo = build_ppo_config(load_config(None, [*TINY, "training.num_env_runners=1"])).build_algo()
    try:
        assert gc.get_freeze_count() > 0  # the driver, after the algorithm was built
        counts = algo.env_runner_group.foreach_env_runner(
            lambda runner: gc.get_freeze_count(), local_env_runner=False
        )
        assert len(counts) == 1 and counts[0] > 0
        algo.train()  # and it trains
    finally:
        algo.stop()

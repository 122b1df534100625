"""`training.gc_freeze`: objects alive after setup leave the garbage collector's passes."""

from __future__ import annotations

import gc
import weakref

import pytest

from mmrlhf.config import load_config
from mmrlhf.trainers.gc_freeze import (
    FREEZES_AFTER_START,
    freeze_after_first_iterations,
    freeze_setup_objects,
)
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


def test_the_first_iterations_freeze_what_they_built_then_no_more() -> None:
    gc.unfreeze()

    class Owner:
        pass

    algorithm, runner = Owner(), Owner()
    for call in range(FREEZES_AFTER_START + 2):
        built = [{"compiled graph": call}]  # what this iteration built
        freeze_after_first_iterations(algorithm=algorithm, metrics_logger=None, result={})
        assert _collector_tracks(built) == (call >= FREEZES_AFTER_START), call
    # Counted per owner: an EnvRunner's samples have their own count.
    built = [{"first sample": True}]
    freeze_after_first_iterations(env_runner=runner, metrics_logger=None, samples=[])
    assert not _collector_tracks(built)


def test_the_option_installs_the_callbacks() -> None:
    from mmrlhf.trainers.ppo import build_ppo_config

    on = build_ppo_config(load_config(None, []))
    assert on.callbacks_on_algorithm_init is freeze_setup_objects
    assert on.callbacks_on_environment_created is freeze_setup_objects
    assert on.callbacks_on_train_result is freeze_after_first_iterations
    assert on.callbacks_on_sample_end is freeze_after_first_iterations
    off = build_ppo_config(load_config(None, ["training.gc_freeze=false"]))
    for hook in ("algorithm_init", "environment_created", "train_result", "sample_end"):
        assert getattr(off, f"callbacks_on_{hook}") is None, hook


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
        algo.train()  # and it trains, then freezes what its first iteration built
        assert getattr(algo, "_mmrlhf_gc_freezes", 0) == 1
        sampled = algo.env_runner_group.foreach_env_runner(
            lambda runner: getattr(runner, "_mmrlhf_gc_freezes", 0), local_env_runner=False
        )
        assert sampled[0] >= 1  # and the EnvRunner after its first sample
    finally:
        algo.stop()


def test_the_drivers_env_runner_leaves_the_freezes_to_the_algorithm() -> None:
    gc.unfreeze()

    class LocalRunner:
        worker_index = 0

    built = [{"driver": True}]
    freeze_setup_objects(env_runner=LocalRunner(), metrics_logger=None)
    freeze_after_first_iterations(env_runner=LocalRunner(), metrics_logger=None, samples=[])
    assert gc.get_freeze_count() == 0 and _collector_tracks(built)

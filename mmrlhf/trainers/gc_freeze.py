"""Python's cyclic garbage collector, kept off the objects a run builds once.

RLlib allocates many small container objects per episode (episodes, lookback buffers, metric
entries), so the collector runs often: on `bench_vs_sb3.yaml` about 48 young-generation passes
per 512-step iteration, and a full pass walks every object the process holds: torch, Ray and
transformers' modules, the model, the connectors, and with `model.compile_trunk` the graphs
and guards `torch.compile` builds during the first iterations. `gc.freeze()` moves
everything alive at the time into a permanent generation that no pass walks again. It runs
once the algorithm is built (driver) and once each EnvRunner has its env, and again after
the first `FREEZES_AFTER_START` training iterations (driver) and `sample()` calls (each
EnvRunner), when the compiled graphs exist. A freeze only at setup left them to the
collector, whose full passes then came more often, not less: Python starts one when the
objects waiting in the middle generation exceed a quarter of the long-lived ones, and the
frozen are not counted among those.

Frozen objects are never collected as cyclic garbage (reference counting still frees the
rest), so each freeze runs `gc.collect()` first and none runs once training is under way.
The driver's own EnvRunner (`worker_index` 0) leaves its freezes to the algorithm's
callbacks, which run in the same process right after its own (a full `gc.collect()` each).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

logger = logging.getLogger(__name__)

FREEZES_AFTER_START = 2
"""Training iterations (driver) and `sample()` calls (EnvRunner) after which to freeze again:
`torch.compile` builds the trunk's graphs for acting, training and GAE's value pass there."""

_COUNT_ATTR = "_mmrlhf_gc_freezes"


def _in_the_driver(env_runner: Any) -> bool:
    """The driver's EnvRunner: its process is frozen by the algorithm's callbacks."""
    return env_runner is not None and getattr(env_runner, "worker_index", None) == 0


def freeze_setup_objects(*, env_runner: Any = None, **_: Any) -> None:
    """RLlib callback (`on_algorithm_init`, `on_environment_created`): `gc.freeze()` what
    the process holds after setup."""
    if _in_the_driver(env_runner):
        return
    gc.collect()  # setup's garbage first, so it is not frozen with the rest
    gc.freeze()
    logger.debug("gc.freeze(): %d objects out of the collector's passes", gc.get_freeze_count())


def freeze_after_first_iterations(
    *, algorithm: Any = None, env_runner: Any = None, **_: Any
) -> None:
    """RLlib callback (`on_train_result` in the driver, `on_sample_end` in EnvRunners):
    `freeze_setup_objects` after each of the first `FREEZES_AFTER_START` calls."""
    if _in_the_driver(env_runner):
        return
    owner = algorithm if algorithm is not None else env_runner
    done = getattr(owner, _COUNT_ATTR, 0)
    if done < FREEZES_AFTER_START:
        setattr(owner, _COUNT_ATTR, done + 1)
        freeze_setup_objects()

"""Python's cyclic garbage collector, kept off the objects a run builds once.

RLlib allocates many small container objects per episode (episodes, lookback buffers, metric
entries), so the collector runs often: on `bench_vs_sb3.yaml` about 48 young-generation passes
per 512-step iteration and a full pass every ~12 iterations, and a full pass walks every
object the process holds: torch, Ray and transformers' modules, the model, the connectors.
`gc.freeze()` moves everything alive at the time into a permanent generation that no pass
walks again. Called once the algorithm is built (driver) and once each EnvRunner has its env,
it leaves the passes only the objects made while training. Objects frozen there are never
collected, so it runs once per process after setup (again if an env is re-created), not
during training.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

logger = logging.getLogger(__name__)


def freeze_setup_objects(**_: Any) -> None:
    """RLlib callback (`on_algorithm_init`, `on_environment_created`): `gc.freeze()` what
    the process holds after setup."""
    gc.collect()  # setup's garbage first, so it is not frozen with the rest
    gc.freeze()
    logger.debug("gc.freeze(): %d objects out of the collector's passes", gc.get_freeze_count())

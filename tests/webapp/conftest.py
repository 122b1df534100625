"""Fixtures for the label store, the web app and real servers (no Ray needed)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from mmrlhf.feedback.labelstore import LabelStore
from mmrlhf.feedback.records import EpisodeRecord

RecordFactory = Callable[..., EpisodeRecord]


def make_record(
    episode_id: str = "ep-0",
    *,
    task: str = "vqa",
    prompt: str = "what colour is the circle ?",
    response: str = "red",
    ground_truth: str = "red",
    score: float = 1.0,
    image: np.ndarray | bool | None = True,
    seed: int = 0,
) -> EpisodeRecord:
    """A record with a random 16x16 RGB image (image=True), a given image, or none."""
    if image is True:
        image = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return EpisodeRecord(
        episode_id=episode_id,
        env_runner_id=1,
        task=task,
        prompt=prompt,
        response=response,
        actions=[3],
        ground_truth=ground_truth,
        score=score,
        success=score >= 1.0,
        step_scores=[score],
        image=image if isinstance(image, np.ndarray) else None,
        extras={"f1": score},
    )


@pytest.fixture
def record() -> RecordFactory:
    """Factory: `record("ep-1", score=0.5, ...)`."""
    return make_record


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Where the test's store lives (an experiment directory's labels.sqlite)."""
    return tmp_path / "exp" / "labels.sqlite"


@pytest.fixture
def store(store_path: Path) -> Iterator[LabelStore]:
    """An empty store, closed after the test."""
    s = LabelStore(store_path)
    yield s
    s.close()


def fill(store: LabelStore) -> dict[str, list[int]]:
    """Five items; queries: 3 single, 1 pair (items 1, 2), 1 ranking (items 3, 4, 5)."""
    items = store.add_episodes(
        [make_record(f"ep-{i}", response=f"answer {i}", seed=i) for i in range(5)]
    )
    singles = [store.add_query("single", [i]) for i in items[:3]]
    pair = store.add_query("pair", items[:2])
    ranking = store.add_query("ranking", items[2:5])
    return {"items": items, "single": singles, "pair": [pair], "ranking": [ranking]}


@pytest.fixture
def filled(store: LabelStore) -> dict[str, list[int]]:
    """Ids created by `fill` in the test's store."""
    return fill(store)


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadServer:
    """uvicorn serving an app from a thread of the test process."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

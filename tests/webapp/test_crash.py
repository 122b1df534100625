"""A real server process killed with SIGKILL mid-session loses no acknowledged label."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from mmrlhf.feedback.labelstore import LabelStore
from mmrlhf.trainers.label_server import serve
from tests.webapp.conftest import fill, free_port

START_TIMEOUT_S = 30.0


@contextmanager
def server_process(store_path: Path) -> Iterator[tuple[multiprocessing.Process, str]]:
    """`label_server.serve` in a child process; yields (process, base URL) once it answers.

    The child is forked from the test process, so it starts in well under a second instead of
    re-importing mmrlhf (ray, torch: 4-9 s on 2 cores); it opens its own store and runs uvicorn
    exactly as `mmrlhf label` does.
    """
    port = free_port()
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(
        target=serve,
        args=(str(store_path),),
        kwargs={"port": port, "log_level": "warning"},
        daemon=True,
    )
    proc.start()
    assert proc.pid is not None
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if not proc.is_alive():
                raise RuntimeError(f"label server exited with {proc.exitcode}")
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("label server did not answer in time")
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.is_alive() and proc.pid is not None:  # only the process this test started
            os.kill(proc.pid, signal.SIGTERM)
            proc.join(timeout=10)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(timeout=10)


def post_label(url: str, query_id: int, kind: str, value: object, **extra: object) -> dict:
    body = {"query_id": query_id, "kind": kind, "value": value, "rater_id": "ana", **extra}
    res = httpx.post(f"{url}/api/labels", json=body, timeout=10)
    assert res.is_success, res.text
    return res.json()


def test_sigkill_loses_nothing(store_path: Path) -> None:
    seed = LabelStore(store_path)
    fill(seed)
    seed.close()

    with server_process(store_path) as (proc, url):
        post_label(url, 1, "rating", 5)
        post_label(url, 2, "thumbs", "down")
        post_label(url, 4, "compare", "b")
        post_label(url, 1, "rating", 3, replace=True)
        post_label(url, 3, "skip", None)
        assert httpx.post(f"{url}/api/undo", json={"rater_id": "ana"}).status_code == 200
        acknowledged = httpx.get(f"{url}/api/labels").json()
        queue = httpx.get(f"{url}/api/queue", params={"rater": "ana"}).json()["queries"]
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown, no checkpoint
        proc.join(timeout=10)
        assert proc.exitcode == -signal.SIGKILL

    with LabelStore(store_path) as after:  # straight from the file (and its WAL)
        latest = {lab.query_id: (lab.kind, lab.value) for lab in after.labels()}
        assert latest == {1: ("rating", 3), 2: ("thumbs", "down"), 4: ("compare", "b")}
        assert [p.query.id for p in after.pending("ana")] == [3, 5]

    with server_process(store_path) as (_, url):
        assert httpx.get(f"{url}/api/labels").json() == acknowledged
        assert httpx.get(f"{url}/api/queue", params={"rater": "ana"}).json()["queries"] == queue
        post_label(url, 5, "rank", [4, 5, 3])  # and labelling carries on
        assert httpx.get(f"{url}/api/progress", params={"rater": "ana"}).json()["pending"] == 1

"""Run the labelling web app (`mmrlhf label`), and fill a store with demo episodes.

    serve("results/exp1", port=8765)            # <exp dir>/labels.sqlite, http://127.0.0.1:8765
    serve("labels.sqlite", token="s3cret", demo=6)

The CLI wires `serve`; training code writes to the same store with `LabelStore`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrlhf.feedback.labelstore import DEFAULT_FILENAME, LabelStore
from mmrlhf.feedback.records import EpisodeRecord

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "MMRLHF_LABEL_TOKEN"
DEMO_TASKS: tuple[str, ...] = ("vqa", "caption", "dialogue")


def resolve_store_path(path: str | os.PathLike[str]) -> Path:
    """The SQLite file for `path`: itself if it names a file (`*.sqlite`, `*.db` or an existing
    file), else `<path>/labels.sqlite` (an experiment directory)."""
    p = Path(path)
    if p.is_file() or p.suffix in (".sqlite", ".sqlite3", ".db"):
        return p
    return p / DEFAULT_FILENAME


def serve(
    store_path: str | os.PathLike[str],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    *,
    budget: int | None = None,
    demo: int = 0,
    log_level: str = "info",
) -> None:
    """Serve the labelling page until interrupted (Ctrl-C).

    Args:
        store_path: Experiment directory or SQLite file (see `resolve_store_path`); created
            when missing.
        host: Interface to bind; the default serves this machine only. Binding elsewhere
            without a token logs a warning.
        port: TCP port (0 = any free port).
        token: Shared token raters must send (None: `$MMRLHF_LABEL_TOKEN` if set, else none).
        budget: Set the store's label budget (None: leave it as it is).
        demo: When the store has no queries yet, add this many demo episodes per task
            (vqa, caption, dialogue) with rating, comparison and ranking queries.
        log_level: uvicorn log level.
    """
    import uvicorn

    from mmrlhf.feedback.webapp import create_app

    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    path = resolve_store_path(store_path)
    store = LabelStore(path)
    if budget is not None:
        store.set_budget(budget)
    if demo > 0 and store.progress()["queries"] == 0:
        counts = add_demo_items(store, episodes_per_task=demo)
        logger.info("added demo items: %s", counts)
    if token is None and not _is_loopback(host):
        logger.warning(
            "serving labels on %s without a token: anyone who can reach it can label; "
            "pass a token (or set $%s)",
            host,
            TOKEN_ENV,
        )
    app = create_app(store, token=token)
    logger.info("label store %s; open http://%s:%d/", path, host, port)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        store.close()


class BackgroundLabelServer:
    """The labelling app served from a daemon thread (what `train` starts for human feedback).

    Use `url` to open it and `stop()` to shut it down; the store is closed on stop.
    """

    def __init__(
        self, store_path: str | os.PathLike[str], host: str = DEFAULT_HOST, port: int = 0,
        token: str | None = None,
    ) -> None:  # fmt: skip
        import socket
        import threading

        import uvicorn

        from mmrlhf.feedback.webapp import create_app

        self.store = LabelStore(resolve_store_path(store_path))
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        # Bind first so port 0 resolves to a real port before the thread starts.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.host, self.port = host, int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(self.store, token=token), log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self.store.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def play_episode(
    env: Any, *, scene_seed: int, rng: np.random.Generator, oracle_prob: float, episode_id: str
) -> EpisodeRecord:
    """Play one episode on the scene `scene_seed` with a half-competent policy: the oracle
    action with probability `oracle_prob` per step, else a random action."""
    obs, info = env.reset(seed=scene_seed)
    image = np.array(obs["image"], dtype=np.uint8)
    infos: list[dict[str, Any]] = []
    actions: list[int] = []
    done = False
    while not done:
        if "oracle_action" in info and rng.random() < oracle_prob:
            action = int(info["oracle_action"])
        else:
            action = int(rng.integers(env.action_space.n))
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        actions.append(action)
        done = terminated or truncated
    return EpisodeRecord.from_infos(
        episode_id=episode_id, step_infos=infos, actions=actions, image=image
    )


def rollout_records(
    task: str,
    episodes: int,
    *,
    seed: int = 0,
    oracle_prob: float = 0.6,
    image_size: int = 64,
    same_scene: bool = False,
    max_tries: int = 50,
) -> list[EpisodeRecord]:
    """Records of `episodes` episodes of a task played by `play_episode`'s policy.

    Args:
        task: Env task name.
        episodes: How many records.
        seed: Seeds the scenes and the policy.
        oracle_prob: Per-step probability of the oracle action.
        image_size: Image side in pixels.
        same_scene: All episodes on one scene (same image and prompt) with distinct
            responses where the policy finds them within `max_tries` plays each: what a
            comparison or ranking shows.
        max_tries: Plays per record when looking for a distinct response.
    """
    import gymnasium as gym

    import mmrlhf  # noqa: F401  (registers the env)

    env = gym.make("mmrlhf/MyMultimodalEnv-v0", task=task, image_size=image_size)
    rng = np.random.default_rng(seed)
    records: list[EpisodeRecord] = []
    seen: set[str] = set()
    for i in range(episodes):
        scene = seed * 10_000 + (0 if same_scene else i)
        ep_id = f"demo-{task}-{seed}-{'same-' if same_scene else ''}{i}"
        for _ in range(max_tries if same_scene else 1):
            rec = play_episode(
                env, scene_seed=scene, rng=rng, oracle_prob=oracle_prob, episode_id=ep_id
            )
            if rec.response not in seen:
                break
        seen.add(rec.response)
        records.append(rec)
    env.close()
    return records


def add_demo_items(
    store: LabelStore,
    *,
    episodes_per_task: int = 6,
    tasks: Sequence[str] = DEMO_TASKS,
    seed: int = 0,
) -> dict[str, int]:
    """Fill a store with demo episodes. Per task: `episodes_per_task` episodes on distinct
    scenes, each a `single` query; `episodes_per_task // 2` `pair` queries and one `ranking`
    of 3, each on one scene with different responses. Returns counts per kind."""
    counts = {"items": 0, "single": 0, "pair": 0, "ranking": 0}
    meta = {"source": "demo"}
    for t, task in enumerate(tasks):
        base = seed * 1000 + 100 * t
        ids = store.add_episodes(rollout_records(task, episodes_per_task, seed=base))
        for i in ids:
            store.add_query("single", [i], meta=meta)
        counts["single"] += len(ids)
        counts["items"] += len(ids)
        for p in range(episodes_per_task // 2):
            pair = store.add_episodes(rollout_records(task, 2, seed=base + 1 + p, same_scene=True))
            store.add_query("pair", pair, meta=meta)
            counts["pair"] += 1
            counts["items"] += 2
        ranked = store.add_episodes(rollout_records(task, 3, seed=base + 99, same_scene=True))
        store.add_query("ranking", ranked, meta=meta)
        counts["ranking"] += 1
        counts["items"] += 3
    return counts

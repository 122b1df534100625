"""`train` serves the labelling page beside an RLHF run that takes human labels."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mmrlhf.config import ExperimentConfig
from mmrlhf.feedback.labelstore import LabelStore
from mmrlhf.trainers.label_server import BackgroundLabelServer
from mmrlhf.trainers.train import train


def test_background_server_serves_then_stops(tmp_path: Path) -> None:
    server = BackgroundLabelServer(tmp_path, port=0)
    try:
        assert httpx.get(server.url + "api/health", timeout=5).status_code == 200
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "api/health", timeout=1)


@pytest.mark.ray
def test_train_starts_the_page_and_queues_episodes_for_people(
    ray_session: None, tiny_cfg: ExperimentConfig, tmp_path: Path
) -> None:
    store = tmp_path / "labels.sqlite"
    cfg = tiny_cfg.with_overrides(
        {
            "env.reward_mode": "none",
            "feedback.enabled": True,
            "feedback.source": "reward_model",
            "feedback.human_store": str(store),
            "feedback.human_app_port": 0,
            "feedback.human_enqueue_fraction": 1.0,
            "stop.iterations": 2,
        }
    )
    lines: list[str] = []
    train(cfg, debug=True, progress=lines.append)
    assert any(line.startswith("labelling page: http://127.0.0.1:") for line in lines)
    with LabelStore(store) as labels:
        assert labels.progress()["queries"] > 0  # episodes were queued for people

"""`train` serves the labelling page beside an RLHF run that takes human labels."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mmrlhf.config import ExperimentConfig
from mmrlhf.feedback.labelstore import LabelStore
from mmrlhf.trainers.label_server import BackgroundLabelServer
from mmrlhf.trainers.train import train
from tests.conftest import HUMAN_RLHF


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
    cfg = tiny_cfg.with_overrides({**HUMAN_RLHF, "stop.iterations": 2})
    store = Path(cfg.feedback.human_store or "")
    lines: list[str] = []
    train(cfg, debug=True, progress=lines.append)
    assert any(line.startswith("labelling page: http://127.0.0.1:") for line in lines)
    with LabelStore(store) as labels:
        assert labels.progress()["queries"] > 0  # episodes were queued for people


def test_source_human_labels_into_the_run_directory(tmp_path: Path) -> None:
    from mmrlhf.config import load_config
    from mmrlhf.feedback.config import FeedbackConfig

    cfg = load_config(
        None,
        ["feedback.enabled=true", "feedback.source=human", f"output_dir={tmp_path}", "name=exp"],
    )
    assert cfg.feedback.source == "reward_model"  # RLHF fed by people
    assert cfg.feedback.human_store == str(tmp_path / "exp" / "labels.sqlite")
    assert cfg.feedback.human_app_port == 8765  # `train` serves the page
    mine = load_config(None, ["feedback.source=human", f"feedback.human_store={tmp_path}/l.db"])
    assert mine.feedback.human_store == f"{tmp_path}/l.db"
    with pytest.raises(ValueError, match="source='human' needs human_store"):
        FeedbackConfig(enabled=True, source="human")

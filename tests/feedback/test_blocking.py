"""Blocking debug mode: a person's score within the timeout, else the fallback rater."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmrlhf.feedback.blocking import BlockingHumanRater
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.labelstore import LabelStore
from mmrlhf.feedback.raters import OracleRater
from mmrlhf.feedback.records import EpisodeRecord

from .conftest import make_record


def _record(score: float, episode_id: str) -> EpisodeRecord:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    return dataclasses.replace(make_record(score, episode_id=episode_id), image=image)


def test_person_answers_in_time(tmp_path: Path) -> None:
    store_path = tmp_path / "labels.sqlite"
    rater = BlockingHumanRater(store_path, timeout_s=10.0, fallback=OracleRater())

    def person() -> None:  # a rater at the page, in another thread
        with LabelStore(store_path) as store:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pending = store.pending("ana", limit=1)
                if pending:
                    store.add_label(pending[0].query.id, "ana", "rating", 4)
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=person)
    thread.start()
    label = rater.rate(_record(0.0, "ep1"))
    thread.join()
    assert label is not None and label.rater == "human:ana"
    assert label.reward == pytest.approx(0.75)  # 4 stars of 1..5
    assert (rater.human_labels, rater.fallbacks) == (1, 0)


def test_nobody_answers_so_the_fallback_scores(tmp_path: Path) -> None:
    rater = BlockingHumanRater(tmp_path / "labels.sqlite", timeout_s=0.2,
                               fallback=OracleRater())  # fmt: skip
    label = rater.rate(_record(1.0, "ep2"))
    assert label is not None and label.rater == "oracle" and label.reward == 1.0
    assert (rater.human_labels, rater.fallbacks) == (0, 1)


def test_config_builds_it_and_rejects_bad_combinations(tmp_path: Path) -> None:
    cfg = FeedbackConfig(enabled=True, human_store=str(tmp_path / "l.sqlite"),
                         human_blocking=True, human_blocking_timeout_s=1.0)  # fmt: skip
    assert isinstance(cfg.make_rater(0), BlockingHumanRater)
    with pytest.raises(ValueError, match="human_blocking needs human_store"):
        FeedbackConfig(human_blocking=True)

"""The label log: an online run's labels and episodes on disk, read back in order, refittable."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.label_log import LabelLog, chunk_paths, load_label_log
from mmrlhf.feedback.pairs import oracle_pairs
from mmrlhf.feedback.preferences import BinaryLabel, PreferenceLabel
from mmrlhf.feedback.reward_model import RewardModelSpec, load_reward_model
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.trainers.reward_model import train_reward_model
from tests.rlhf.conftest import TINY_RM, make_sample


def test_chunks_hold_each_episode_once_and_read_back_in_order(tmp_path: Path) -> None:
    s = {i: make_sample(f"e{i}", score=i / 4, seed=i) for i in range(4)}
    log = LabelLog(tmp_path / "log")
    log.append([PreferenceLabel("e0", "e1", 1.0)], {"e0": s[0], "e1": s[1]})
    # e1 again, with e2: only e2 is new.
    log.append(
        [PreferenceLabel("e1", "e2", 0.5), BinaryLabel("e1", False)], {"e1": s[1], "e2": s[2]}
    )
    assert log.append([], {}) is None  # nothing to write, no empty chunk
    paths = chunk_paths(tmp_path / "log")
    assert [p.name for p in paths] == ["labels-00001.pkl", "labels-00002.pkl"]
    with paths[1].open("rb") as f:
        assert set(pickle.load(f)["samples"]) == {"e2"}
    labels, samples = load_label_log(tmp_path / "log")
    assert labels == [
        PreferenceLabel("e0", "e1", 1.0),
        PreferenceLabel("e1", "e2", 0.5),
        BinaryLabel("e1", False),
    ]
    assert set(samples) == {"e0", "e1", "e2"}
    np.testing.assert_array_equal(samples["e2"].image, s[2].image)
    assert samples["e1"].score == s[1].score


def test_a_reopened_log_appends_after_its_last_chunk(tmp_path: Path) -> None:
    a, b, c = (make_sample(f"e{i}", seed=i) for i in range(3))
    LabelLog(tmp_path).append([PreferenceLabel("e0", "e1", 1.0)], {"e0": a, "e1": b})
    again = LabelLog(tmp_path)
    out = again.append([PreferenceLabel("e1", "e2", 0.0)], {"e2": c})  # e1 is on disk already
    assert out is not None and out.name == "labels-00002.pkl"
    labels, samples = load_label_log(tmp_path)
    assert len(labels) == 2 and set(samples) == {"e0", "e1", "e2"}


def test_bad_input_is_refused_with_what_was_wrong(tmp_path: Path) -> None:
    log = LabelLog(tmp_path / "log")
    with pytest.raises(KeyError, match="e9"):
        log.append([PreferenceLabel("e0", "e9", 1.0)], {"e0": make_sample("e0")})
    assert chunk_paths(tmp_path / "log") == []  # nothing half-written
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_label_log(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no labels-NNNNN.pkl"):
        load_label_log(tmp_path / "log")
    (tmp_path / "log" / "labels-00001.pkl").write_bytes(pickle.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version 1"):
        load_label_log(tmp_path / "log")


def test_the_hub_logs_every_label_it_trains_on(tmp_path: Path, tiny_spec: RewardModelSpec) -> None:
    cfg = FeedbackConfig(
        enabled=True, source="reward_model", queries_per_iter=2, initial_queries=2,
        label_budget=5, rm_min_steps=1, rm_max_steps=1, rm_label_log=str(tmp_path / "labels"),
        **TINY_RM,
    )  # fmt: skip
    state = RLHFState(cfg)
    for it in range(1, 5):
        state.add_episodes(
            [make_sample(f"{it}-{i}", score=i / 7, seed=10 * it + i) for i in range(8)],
            tiny_spec,
        )
        state.step(it)
    assert state.trainer is not None
    labels, samples = load_label_log(tmp_path / "labels")
    assert labels == state.training_labels() and len(labels) == 5
    assert {i for lab in labels for i in lab.episode_ids} == set(samples)
    for episode_id, sample in samples.items():
        assert sample.score == state.trainer.samples[episode_id].score


def test_an_online_runs_labels_refit_offline(tmp_path: Path) -> None:
    env = {"task": "vqa", "image_size": 16, "num_objects": 1, "question_types": ["color"]}
    samples, labels = oracle_pairs(env, 6, seed=3, response_len=2)
    LabelLog(tmp_path / "labels").append(labels, {s.episode_id: s for s in samples})
    cfg = FeedbackConfig(rm_min_steps=1, rm_max_steps=2, **TINY_RM)
    summary = train_reward_model(env, tmp_path / "rm", feedback=cfg, rounds=1,
                                 label_log=tmp_path / "labels")  # fmt: skip
    assert summary["pairs"] == 6 and summary["passes"] > 0
    ensemble, meta = load_reward_model(summary["checkpoint"])
    assert meta["labels"] == 6 and ensemble.spec.image_size == 16

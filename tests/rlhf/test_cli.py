"""`mmrlhf reward-model eval` on a reward model trained from oracle pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrlhf.cli import main
from mmrlhf.trainers.reward_model import make_pairs, train_reward_model

ENV = {"task": "vqa", "num_objects": 1, "question_types": ["color"], "image_size": 32}


def test_reward_model_eval_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trained = train_reward_model(ENV, tmp_path / "rm", n_pairs=300, rounds=2)
    pairs = make_pairs(ENV, tmp_path / "pairs.npz", n_pairs=100)["path"]
    out = tmp_path / "eval.json"
    argv = ["reward-model", "eval", trained["checkpoint"], "--pairs", pairs, "--out", str(out)]
    assert main(argv) == 0
    metrics = json.loads(out.read_text())
    assert metrics["pairs"] > 0 and 0.0 <= metrics["preference_accuracy"] <= 1.0

    # Pairs drawn from an experiment config, with the hard (swapped-answer) distractor.
    config = tmp_path / "exp.yaml"
    config.write_text(json.dumps({"env": ENV}))  # JSON is YAML
    argv = ["reward-model", "eval", trained["checkpoint"], "--pairs", str(config),
            "--n-pairs", "20", "--distractor", "swap", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    swap = json.loads(out.read_text())
    assert swap["distractor"] == "swap" and swap["pairs"] == 20

    # Every answer of fresh held-out scenes ranked: how often the right one is on top.
    argv = ["reward-model", "eval", trained["checkpoint"], "--pairs", str(config),
            "--n-pairs", "20", "--split", "test", "--greedy", "15", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    greedy = json.loads(out.read_text())
    assert greedy["split"] == "test" and greedy["greedy"]["episodes"] == 15
    assert 0.0 <= greedy["greedy"]["accuracy"] <= 1.0
    assert list(greedy["greedy"]["by_kind"]) == ["color"]
    # A pairs file holds no scenes to draw.
    argv = ["reward-model", "eval", trained["checkpoint"], "--pairs", pairs, "--greedy", "5"]
    assert main(argv) == 2
    assert "is a pairs file" in capsys.readouterr().err


def test_training_can_leave_out_the_labels_that_show_an_answer_right(tmp_path: Path) -> None:
    """`never_right`: the pairs a red answer won are dropped (what an online run's labels look
    like when the policy stopped saying red early); the greedy report says, per right answer,
    what the model learnt anyway."""
    from mmrlhf.feedback.pairs import oracle_pairs
    from mmrlhf.trainers.reward_model import evaluate_reward_model

    samples, labels = oracle_pairs(ENV, 60, seed=0)
    response = {s.episode_id: s.response for s in samples}
    red_wins = sum(response[lab.a if lab.p_a == 1.0 else lab.b] == "red" for lab in labels)
    assert 0 < red_wins < 60
    fit = train_reward_model(ENV, tmp_path / "rm", n_pairs=60, rounds=1, never_right=["red"])
    assert fit["left_out_never_right"] == red_wins
    assert fit["pairs"] == 60 - red_wins
    metrics = evaluate_reward_model(fit["checkpoint"], ENV, 20, greedy_episodes=30)
    assert "red" in metrics["greedy"]["by_truth"]

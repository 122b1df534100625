"""Reward-model refits: restart from the pretrained weights as the label set grows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mmrlhf.config import ConfigError, load_config
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.preferences import PreferenceLabel
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.rlhf import RLHFState
from mmrlhf.feedback.rm_trainer import RewardModelTrainer, TrainerSettings
from tests.rlhf.conftest import TINY_RM, make_sample


def labelled(trainer: RewardModelTrainer, n: int, start: int = 0) -> None:
    """Add `n` strict pairs (the odd episode is the better one)."""
    samples = {}
    labels = []
    for i in range(start, start + n):
        a = make_sample(f"p{i}a", score=1.0, response=3, seed=2 * i)
        b = make_sample(f"p{i}b", score=0.0, response=4, seed=2 * i + 1)
        samples.update({a.episode_id: a, b.episode_id: b})
        labels.append(PreferenceLabel(a.episode_id, b.episode_id, 1.0))
    trainer.add_labels(labels, samples)


def fast_settings(**kw: Any) -> TrainerSettings:
    return TrainerSettings(min_steps=2, max_steps=2, refit_epochs=1.0, batch_size=4, **kw)


def test_refits_are_due_each_time_the_labels_double_and_once_at_the_end(
    tiny_spec: RewardModelSpec,
) -> None:
    trainer = RewardModelTrainer(RewardEnsemble(tiny_spec), fast_settings(refit_growth=2.0))
    labelled(trainer, 4)
    assert not trainer.refit_due()  # no anchor yet: train in place
    assert trainer.train()["refit"] is False
    trainer.set_anchor()
    refits = []
    for n in (0, 2, 2, 4, 1):  # label-set sizes 4, 6, 8, 12, 13
        labelled(trainer, n, start=100 + len(trainer.labels))
        refits.append(trainer.train()["refit"])
    assert refits == [True, False, True, False, False]
    assert trainer.train(final=True)["refit"] is True  # 13 > 8: the last labels get a refit
    assert trainer.train(final=True)["refit"] is False  # nothing new since
    assert trainer.refits == 3


def test_a_refit_starts_from_the_anchor_with_a_fresh_optimizer(
    tiny_spec: RewardModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = RewardModelTrainer(RewardEnsemble(tiny_spec), fast_settings(refit_growth=2.0))
    labelled(trainer, 6)
    trainer.set_anchor()
    anchor = {k: v.clone() for k, v in trainer.anchor.items()}
    assert trainer.train()["refit"] is True  # the first refit after the anchor: 6 labels
    assert trainer.train()["refit"] is False  # in place: the weights leave the anchor
    moved = trainer.ensemble.state_dict()
    assert any(not torch.equal(moved[k], anchor[k]) for k in anchor)
    seen: dict[str, Any] = {}
    fit = trainer._fit

    def spy(passes: float, max_steps: int | None) -> dict[str, Any]:
        seen["weights"] = {k: v.clone() for k, v in trainer.ensemble.state_dict().items()}
        seen["adam_state"] = len(trainer.optimizer.state)
        seen["args"] = (passes, max_steps)
        return fit(passes, max_steps)

    monkeypatch.setattr(trainer, "_fit", spy)
    labelled(trainer, 6, start=50)
    assert trainer.train()["refit"] is True
    assert all(torch.equal(seen["weights"][k], anchor[k]) for k in anchor)
    assert seen["adam_state"] == 0
    assert seen["args"] == (1.0, None)  # refit_epochs passes, not capped by max_steps


def test_refits_need_an_anchor_and_valid_settings(tiny_spec: RewardModelSpec) -> None:
    trainer = RewardModelTrainer(RewardEnsemble(tiny_spec), fast_settings())
    labelled(trainer, 4)
    with pytest.raises(RuntimeError, match="anchor"):
        trainer.refit()
    trainer.set_anchor()
    assert not trainer.refit_due(final=True)  # refit_growth None: never
    with pytest.raises(ValueError, match="refit_growth"):
        TrainerSettings(refit_growth=1.0)
    with pytest.raises(ValueError, match="refit_epochs"):
        TrainerSettings(refit_epochs=0.0)
    with pytest.raises(ConfigError, match="rm_refit_growth"):
        load_config("configs/rlhf_vqa.yaml", ["feedback.rm_refit_growth=0.5"])


def test_the_state_anchors_after_pretraining_and_refits_when_the_budget_is_spent(
    tiny_spec: RewardModelSpec,
) -> None:
    cfg = FeedbackConfig(
        enabled=True, source="reward_model", rm_pretrain_steps=4, rm_pretrain_per_iter=2,
        rm_pretrain_min_pool=4, rm_contrastive_batch=4, queries_per_iter=3,
        initial_queries=3, label_budget=9, rm_min_steps=1, rm_max_steps=1,
        rm_refit_growth=100.0, rm_refit_epochs=1.0, **TINY_RM,
    )  # fmt: skip
    state = RLHFState(cfg)
    anchors = []
    for it in range(1, 6):
        state.add_episodes(
            [make_sample(f"{it}-{i}", score=i / 7, seed=10 * it + i) for i in range(8)],
            tiny_spec,
        )
        state.step(it)
        anchors.append(state.trainer is not None and state.trainer.anchor is not None)
    # Two contrastive steps per iteration: the anchor exists once all four are done.
    assert anchors == [False, True, True, True, True]
    stats = state.stats()
    assert stats["labels"] == 9 and stats["labels_remaining"] == 0
    # Growth 100 never comes; the one refit is the budget's last (third) label batch.
    assert stats["rm_refits"] == 1


def test_without_pretraining_the_initial_weights_are_the_anchor(
    tiny_config: FeedbackConfig, tiny_spec: RewardModelSpec
) -> None:
    state = RLHFState(tiny_config.model_copy(update={"rm_refit_growth": 2.0}))
    state.ensure_model(tiny_spec)
    assert state.trainer is not None and state.trainer.anchor is not None


def test_settling_counts_passes_since_the_labels_changed(tiny_spec: RewardModelSpec) -> None:
    trainer = RewardModelTrainer(
        RewardEnsemble(tiny_spec), fast_settings(settle_epochs=3.0, epochs=1.0)
    )
    assert trainer.settled()  # no labels: nothing to fit
    labelled(trainer, 8)
    assert trainer.passes == 0.0 and not trainer.settled()
    trainer.train()  # 2 steps of 4 labels = 1 pass over the 8
    assert trainer.passes == pytest.approx(1.0) and not trainer.settled()
    trainer.train()
    trainer.train()
    assert trainer.settled()
    labelled(trainer, 8, start=8)  # new labels: their set starts over
    assert trainer.passes == 0.0 and not trainer.settled()
    assert RewardModelTrainer(RewardEnsemble(tiny_spec), fast_settings()).settled()
    with pytest.raises(ValueError, match="settle_epochs"):
        TrainerSettings(settle_epochs=0.0)


def test_the_hub_keeps_fitting_after_the_budget_until_the_labels_settle(
    tiny_spec: RewardModelSpec,
) -> None:
    cfg = FeedbackConfig(
        enabled=True, source="reward_model", queries_per_iter=4, label_budget=4,
        rm_min_steps=1, rm_max_steps=1, rm_batch_size=2, rm_epochs=1.0,
        rm_settle_epochs=2.0, **TINY_RM,
    )  # fmt: skip
    state = RLHFState(cfg)
    state.add_episodes([make_sample(f"e{i}", score=i / 9, seed=i) for i in range(10)], tiny_spec)
    published = [state.step(it)["published"] for it in range(1, 7)]
    # Labels in step 1 (1 step of 2 of the 4 labels: half a pass), then no labels: steps 2-4
    # fit on (half a pass each) until 2 passes, then the hub rests.
    assert published == [True, True, True, True, False, False]
    assert state.stats()["labels"] == 4 and state.stats()["rm_passes"] == pytest.approx(2.0)
    assert state.version == 4

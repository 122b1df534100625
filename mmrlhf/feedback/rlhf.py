"""`RLHFState`: the reward-model side of RLHF in plain Python (the hub actor wraps it).

Per training iteration (`step`):

1. **queries**: the `QuerySchedule` says how many labels are owed, capped by the label
   budget; `select_queries` picks pairs / k-rankings from the pool of recent episodes the
   EnvRunners sent (same prompt where possible; random, by ensemble disagreement, or around
   the episode the ensemble rates best);
2. **labels**: the simulated `PreferenceRater` answers them, and the answers go through
   `add_labels`, the same entry point human labels use (budget enforced there);
3. **training**: with `rm_pretrain_steps`, a share of contrastive steps on the unlabelled pool
   comes first (`RewardModelTrainer.pretrain`; up to `rm_pretrain_per_iter` per step, so the
   pool refreshes between them and no step runs long); new labels are scored by the current
   model (held-out accuracy), then the ensemble trains on all labels so far;
Human labels (`config.human_store` set): each step first writes a share of the episodes
received since the last step to the label store for people (`human_enqueue_*`), then polls the
store for labels that arrived and adds them through `add_labels` (see `feedback/human.py`).
Neither waits for a person. The simulated rater then stays quiet unless `human_simulated`.

4. **publication**: a new `PublishedRewardModel` (version + 1, reward mean/std on recent
   episodes) that EnvRunners pull without waiting.

Thread safety: the hub actor runs several methods at once (EnvRunners keep sending episodes
while a step trains). `_data_lock` guards the pool and pending labels for short moments;
`_step_lock` lets one step run at a time. Publication swaps one reference.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrlhf.feedback.budget import LabelBudget
from mmrlhf.feedback.config import KIND_RULES, SCENE_FIT_RULES, SPREAD_RULES, FeedbackConfig
from mmrlhf.feedback.contrast import (
    PromptBaseline,
    contrasted_rewards,
    known_answer_fit,
    load_prompt_baseline,
)
from mmrlhf.feedback.human import HumanLabelBridge
from mmrlhf.feedback.label_log import LabelLog
from mmrlhf.feedback.novelty import JudgedCounts
from mmrlhf.feedback.preferences import (
    PreferenceLabel,
    PreferenceRater,
    RankingLabel,
    RLHFLabel,
    label_cost,
    strict_winners,
)
from mmrlhf.feedback.queries import QuerySchedule, select_queries
from mmrlhf.feedback.reward_model import (
    PublishedRewardModel,
    RewardEnsemble,
    RewardModelSpec,
    load_reward_model,
    save_reward_model,
)
from mmrlhf.feedback.rm_trainer import RewardModelTrainer, TrainerSettings
from mmrlhf.feedback.samples import EpisodePool, EpisodeSample

logger = logging.getLogger(__name__)

# Recent label batches whose before-training accuracy makes up the `rm_accuracy` metric.
ACCURACY_WINDOW = 10
# Recent pool episodes the published reward mean/std are computed on.
NORM_SAMPLES = 1024


def make_spec(config: FeedbackConfig, *, image_size: int, prompt_len: int, vocab_size: int
              ) -> RewardModelSpec:  # fmt: skip
    """The reward-model architecture `config` asks for, for an env with these sizes."""
    return RewardModelSpec(
        image_size=image_size,
        prompt_len=prompt_len,
        response_len=config.rm_response_len,
        vocab_size=vocab_size,
        model=config.rm_model_config().model_dump(mode="json"),
        ensemble_size=config.rm_ensemble,
        head=config.rm_head,
    )


def spec_for_sample(config: FeedbackConfig, sample: EpisodeSample, *, vocab_size: int
                    ) -> RewardModelSpec:  # fmt: skip
    """`make_spec` for an env whose episodes look like `sample` (its image and prompt sizes).

    Raises:
        ValueError: The sample's image is not square (the reward model's encoders need it).
    """
    height, width = sample.image.shape[:2]
    if height != width:
        raise ValueError(f"the reward model needs square images, got {height}x{width}")
    return make_spec(
        config,
        image_size=int(height),
        prompt_len=int(sample.prompt_ids.shape[0]),
        vocab_size=vocab_size,
    )


def trainer_settings(config: FeedbackConfig) -> TrainerSettings:
    """Reward-model optimisation settings from the flat config fields."""
    return TrainerSettings(
        lr=config.rm_lr,
        weight_decay=config.rm_weight_decay,
        batch_size=config.rm_batch_size,
        epochs=config.rm_epochs,
        min_steps=config.rm_min_steps,
        max_steps=config.rm_max_steps,
        contrastive_batch=config.rm_contrastive_batch,
        seed=config.seed,
        refit_growth=config.rm_refit_growth,
        refit_epochs=config.rm_refit_epochs,
        settle_epochs=config.rm_settle_epochs,
        winner_weight=config.rm_winner_weight,
        winner_softmax=config.rm_winner_softmax,
        winners=config.rm_winners,
        winner_term_from=config.rm_winner_term_from,
        winner_prior_adjust=config.rm_winner_prior_adjust,
    )


class RLHFState:
    """Pool, label budget, queries, labels, reward-model training and publication.

    Args:
        config: Feedback options (`source="reward_model"` fields).
        rater: Override the simulated preference rater (tests); None = from the config.
    """

    def __init__(self, config: FeedbackConfig, *, rater: PreferenceRater | None = None) -> None:
        self.config = config
        self.pool = EpisodePool(config.rm_pool_size)
        self.budget = LabelBudget(config.label_budget)
        self.schedule = QuerySchedule(
            config.queries_per_iter, decay=config.query_decay, initial=config.initial_queries
        )
        self.rater = rater or PreferenceRater(
            beta=config.preference_beta,
            epsilon=config.preference_epsilon,
            tie_margin=config.preference_tie_margin,
            both_bad=config.preference_both_bad,
            both_good=config.preference_both_good,
            skip_prob=config.skip_prob or 0.0,
            seed=np.random.SeedSequence([config.seed, 7001]),
        )
        self._rng = np.random.default_rng(np.random.SeedSequence([config.seed, 7002]))
        self.trainer: RewardModelTrainer | None = None
        self.published: PublishedRewardModel | None = None
        self._pending: list[tuple[RLHFLabel, dict[str, EpisodeSample]]] = []
        self._labelled: set[str] = set()
        self._senders: set[int] = set()  # EnvRunner ids that have sent episodes
        self._accuracy: deque[tuple[float, int]] = deque(maxlen=ACCURACY_WINDOW)
        self._data_lock = threading.RLock()
        self._step_lock = threading.Lock()
        # challenger_wins: novel-mode pairs whose challenger (the first episode) was preferred
        # outright, the rate at which rarely given answers are shown right.
        self.counts = {"queries": 0, "skipped": 0, "ties": 0, "both_bad": 0, "both_good": 0,
                       "refused": 0, "human": 0, "challenger_wins": 0}  # fmt: skip
        self.human: HumanLabelBridge | None = None
        self._to_people: list[EpisodeSample] = []
        if config.human_store:
            self.human = HumanLabelBridge(config.human_store, settle_s=config.human_settle_s)
            self._human_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 7003]))
            self.counts["human_enqueued"] = 0
        self.last_train: dict[str, Any] = {}
        self.last_pretrain: dict[str, Any] = {}
        self.label_log = LabelLog(config.rm_label_log) if config.rm_label_log else None
        self.judged = JudgedCounts()
        self.baseline = PromptBaseline()
        if config.rm_checkpoint:
            ensemble, meta = load_reward_model(config.rm_checkpoint)
            # Contrastive steps already in the loaded weights count toward rm_pretrain_steps.
            self._set_model(ensemble, pretrain_steps=int(meta.get("pretrain_steps", 0)))
            if config.rm_image_contrast > 0:
                # Rescaled to this run's weight; the pool is empty, so it is the only one.
                saved = load_prompt_baseline(config.rm_checkpoint)
                self.baseline = PromptBaseline(config.rm_image_contrast, saved.table)
            self._publish(norm=(float(meta["norm"][0]), float(meta["norm"][1])))

    # --- model ------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Latest published version (0 = none yet)."""
        return 0 if self.published is None else self.published.version

    def _set_model(self, ensemble: RewardEnsemble, pretrain_steps: int = 0) -> None:
        self.trainer = RewardModelTrainer(ensemble, trainer_settings(self.config))
        self.trainer.pretrain_steps = pretrain_steps
        self._anchor_if_pretrained()

    def _anchor_if_pretrained(self) -> None:
        # Refits restart from the weights the contrastive steps left, once they are all done.
        trainer = self.trainer
        if trainer is None or trainer.anchor is not None:
            return
        if trainer.pretrain_steps >= self.config.rm_pretrain_steps:
            trainer.set_anchor()

    def ensure_model(self, spec: RewardModelSpec) -> None:
        """Build the ensemble for `spec` on first use (EnvRunners send the spec they see)."""
        with self._data_lock:
            if self.trainer is None:
                self._set_model(RewardEnsemble(spec, seed=self.config.seed))
                logger.info("reward model built: %s", spec)
            elif self.trainer.ensemble.spec != spec:
                raise ValueError(
                    f"EnvRunner reward-model spec {spec} differs from the hub's "
                    f"{self.trainer.ensemble.spec}; all runners must share one env layout"
                )

    # --- intake -----------------------------------------------------------------------------

    def add_episodes(
        self, samples: Sequence[EpisodeSample], spec: RewardModelSpec | None = None
    ) -> None:
        """Add recent episodes to the query pool (EnvRunners, fire-and-forget)."""
        if spec is not None and self.trainer is None:
            self.ensure_model(spec)
        with self._data_lock:
            self.pool.add(samples)
            self._senders.update(s.env_runner_id for s in samples)
            if self.human is not None:
                draws = self._human_rng.random(len(samples))
                frac = self.config.human_enqueue_fraction
                self._to_people.extend(s for s, u in zip(samples, draws, strict=True) if u < frac)
                # Keep the newest; the store is written once per step (one transaction).
                extra = len(self._to_people) - self.config.human_enqueue_per_iter
                if extra > 0:
                    del self._to_people[:extra]

    def add_labels(
        self,
        labels: Sequence[RLHFLabel],
        samples: Mapping[str, EpisodeSample] | Sequence[EpisodeSample] = (),
    ) -> int:
        """Queue labels for the next training round; return how many were accepted.

        The one entry point for simulated and human labels. Each accepted label spends
        `label_cost` units of the label budget (1; k - 1 for a ranking of k); labels beyond
        the budget, or naming episodes that are neither in `samples` nor in the pool, are
        refused.

        Args:
            labels: Preference, ranking, rating or binary labels.
            samples: The labelled episodes' samples when the pool may not hold them (e.g.
                a label store replaying old episodes).
        """
        known = samples if isinstance(samples, Mapping) else {s.episode_id: s for s in samples}
        accepted = 0
        with self._data_lock:
            for label in labels:
                found = {i: known.get(i) or self.pool.get(i) for i in label.episode_ids}
                if any(s is None for s in found.values()):
                    self.counts["refused"] += 1
                    continue
                cost = label_cost(label)
                remaining = self.budget.remaining
                if remaining is not None and remaining < cost:
                    self.counts["refused"] += 1
                    continue
                self.budget.reserve(cost)
                self._pending.append((label, found))  # type: ignore[arg-type]
                self._labelled.update(label.episode_ids)
                if label.source != "simulated":
                    self.counts["human"] += 1
                accepted += 1
        return accepted

    # --- per-iteration work ------------------------------------------------------------------

    def _member_scores(self, samples: Sequence[EpisodeSample]) -> np.ndarray:
        assert self.trainer is not None
        return self.trainer.rewards(samples).numpy()

    def _scene_fit(self, samples: Sequence[EpisodeSample]) -> np.ndarray:
        """The probability (B,) that the best of the answers shown right so far is right on
        each sample's scene; 0 while none is known."""
        assert self.trainer is not None
        known = list(self.judged.right_responses.values())
        if not known:
            return np.zeros(len(samples))
        fit = torch.as_tensor(known_answer_fit(self.trainer.ensemble, samples, known))
        return self.trainer.ensemble.members[0].log_prob_right(fit).exp().numpy()

    def label_round(self, iteration: int) -> int:
        """Ask the simulated rater the queries owed at `iteration`; return labels accepted."""
        if self.trainer is None:
            return 0
        with self._data_lock:
            obtained = self.budget.granted
            owed = self.schedule.owed(iteration, obtained)
            remaining = self.budget.remaining
            units = owed if remaining is None else min(owed, remaining)
            # A query of k episodes costs k - 1 labels (see label_cost).
            n = units // (self.config.query_k - 1)
            candidates = self.pool.samples()
            exclude = set(self._labelled)
        if n <= 0:
            return 0
        mode = self.config.query_mode if self.trainer.labels else "random"
        scenes = self.config.query_challenger_scenes
        queries = select_queries(
            candidates,
            n,
            k=self.config.query_k,
            mode=mode,
            rng=self._rng,
            score_fn=self._member_scores,
            candidates=self.config.query_candidates,
            group=self.config.query_group,
            exclude=exclude,
            rank=self.config.query_rank,
            judged=self.judged.counts,
            novelty=self.config.query_novelty,
            challengers=self.config.query_challengers,
            shown_right=self.judged.shown_right,
            give_up=self.config.query_give_up,
            partner_novelty=self.config.query_partner_novelty,
            judged_by_prompt=self.judged.by_prompt,
            scene_fit=self._scene_fit if scenes in SCENE_FIT_RULES else None,
            confirmations=self.config.query_confirmations,
            give_up_rounds=self.config.query_give_up_rounds,
            spread_questions=scenes in SPREAD_RULES,
            right_words=self.judged.right_words if scenes in KIND_RULES else None,
        )
        labels: list[RLHFLabel] = []
        for query in queries:
            self.counts["queries"] += 1
            label = self.rater.answer(query)
            if label is None:
                self.counts["skipped"] += 1
                continue
            tie_pair = isinstance(label, PreferenceLabel) and label.p_a == 0.5
            tie_rank = isinstance(label, RankingLabel) and len(set(label.ranks)) < len(label.ranks)
            if tie_pair or tie_rank:
                self.counts["ties"] += 1
            if isinstance(label, PreferenceLabel) and label.tie is not None:
                self.counts[label.tie] += 1
            if mode == "novel" and isinstance(label, PreferenceLabel):
                self.counts["challenger_wins"] += strict_winners([label]) == [query[0].episode_id]
            labels.append(label)
        return self.add_labels(labels, {s.episode_id: s for q in queries for s in q})

    def human_round(self) -> int:
        """Queue episodes for people and add the human labels that arrived; return labels
        accepted. Store errors are logged, never raised: people must not stop training."""
        if self.human is None:
            return 0
        with self._data_lock:
            to_people, self._to_people = self._to_people, []
        try:
            self.counts["human_enqueued"] += len(self.human.enqueue(to_people))
            labels = self.human.poll()
            with self._data_lock:
                missing = {i for lab in labels for i in lab.episode_ids if i not in self.pool}
            samples = self.human.samples(missing)
        except Exception:
            logger.warning("label store %s failed this step", self.config.human_store,
                           exc_info=True)  # fmt: skip
            return 0
        return self.add_labels(labels, samples) if labels else 0

    def pretrain_round(self) -> int:
        """Run this iteration's share of contrastive steps on the pool; return steps run."""
        if self.trainer is None:
            return 0
        todo = min(self.config.rm_pretrain_per_iter,
                   self.config.rm_pretrain_steps - self.trainer.pretrain_steps)  # fmt: skip
        with self._data_lock:
            ready = len(self.pool) >= self.config.rm_pretrain_min_pool
            unlabeled = self.pool.samples() if ready and todo > 0 else []
        if not unlabeled:
            return 0
        self.last_pretrain = self.trainer.pretrain(unlabeled, todo)
        self._anchor_if_pretrained()
        return todo

    def train_round(self) -> bool:
        """Train on all labels if new ones arrived, or if the labels have not settled yet
        (`rm_settle_epochs`), then publish; return whether it published."""
        if self.trainer is None:
            return False
        with self._data_lock:
            pending, self._pending = self._pending, []
        if not pending:
            if self.trainer.settled():
                return False
            # No labels came (the budget is spent, or people are slow): keep fitting these.
            self.last_train = self.trainer.train(final=self.budget.remaining == 0)
            self._publish()
            return True
        merged: dict[str, EpisodeSample] = {}
        for _, found in pending:
            merged.update(found)
        labels = [label for label, _ in pending]
        before = self.trainer.add_labels(labels, merged)
        self.judged.add(labels, merged)
        if self.label_log is not None:
            self.label_log.append(labels, merged)
        if before["pairs"]:
            self._accuracy.append((before["accuracy"], int(before["pairs"])))
        self.last_train = self.trainer.train(final=self.budget.remaining == 0)
        self._publish()
        return True

    def step(self, iteration: int) -> dict[str, Any]:
        """One iteration's work: queries and labels, then training and publication."""
        with self._step_lock:
            human = self.human_round()
            asked = 0
            if self.human is None or self.config.human_simulated:
                asked = self.label_round(iteration)
            self.pretrain_round()
            published = self.train_round()
        out: dict[str, Any] = {
            "labels_added": asked + human,
            "published": published,
            "version": self.version,
        }
        if self.human is not None:
            out["human_labels_added"] = human
        return out

    # --- publication ------------------------------------------------------------------------

    def _publish(self, norm: tuple[float, float] | None = None) -> None:
        assert self.trainer is not None
        if self.config.rm_image_contrast > 0 and (
            self.config.rm_contrast_from == "start" or self.trainer.final_refitted
        ):
            self._fit_baseline()
        if norm is None:
            with self._data_lock:
                recent = self.pool.samples()[-NORM_SAMPLES:]
            norm = (0.0, 1.0)
            if recent:
                mean = contrasted_rewards(self.trainer.ensemble, recent, self.baseline).mean(dim=0)
                norm = (float(mean.mean()), max(float(mean.std(unbiased=False)), 1e-3))
        self.published = PublishedRewardModel(
            version=self.version + 1,
            spec=self.trainer.ensemble.spec.to_dict(),
            state_dict=self.trainer.ensemble.weights(),
            norm_mean=norm[0],
            norm_std=norm[1],
            labels=len(self.trainer.labels),
            pretrain_steps=self.trainer.pretrain_steps,
            # Exploring for labels is over once none can come.
            novelty_scale=self.config.rm_novelty_bonus if self.budget.remaining != 0 else 0.0,
            judged=self.judged.snapshot() if self.config.rm_novelty_bonus > 0 else {},
            prompt_baseline=self.baseline.to_state() if self.baseline.active else {},
        )
        if self.config.rm_save_dir:
            self.save(self.config.rm_save_dir)
        logger.info(
            "published reward model v%d (%d labels, reward mean %.3f std %.3f)",
            self.published.version, len(self.trainer.labels), norm[0], norm[1],
        )  # fmt: skip

    def _fit_baseline(self) -> None:
        # The pool's recent images give each prompt's mean per-word scores under the model
        # about to be published; a pool too small for any prompt keeps the last baseline.
        assert self.trainer is not None
        with self._data_lock:
            samples = self.pool.samples()
        fitted = PromptBaseline.fit(
            self.trainer.ensemble,
            samples,
            weight=self.config.rm_image_contrast,
            min_images=self.config.rm_contrast_min_images,
            max_images=self.config.rm_contrast_images,
        )
        if fitted.active or not self.baseline.active:
            self.baseline = fitted

    def latest(self, have_version: int = 0) -> PublishedRewardModel | None:
        """The newest published model if it is newer than `have_version`, else None."""
        published = self.published
        return published if published is not None and published.version > have_version else None

    def save(self, path: str | Path) -> Path | None:
        """Save the latest published reward model as a checkpoint directory (None if none)."""
        published = self.published
        if published is None:
            return None
        ensemble = published.build()
        return save_reward_model(
            path,
            ensemble,
            version=published.version,
            norm=(published.norm_mean, published.norm_std),
            extra={
                "labels": published.labels,
                "rm_accuracy": self.accuracy(),
                "pretrain_steps": published.pretrain_steps,
            },
            prompt_baseline=published.prompt_baseline,
        )

    def training_labels(self) -> list[RLHFLabel]:
        """The labels the reward model trains on (simulated and human), oldest first."""
        if self.trainer is None:
            return []
        return list(self.trainer.labels)

    # --- metrics ----------------------------------------------------------------------------

    def accuracy(self) -> float:
        """Pair accuracy on the last label batches before they were trained on (nan if none)."""
        total = sum(n for _, n in self._accuracy)
        if total == 0:
            return math.nan
        return sum(a * n for a, n in self._accuracy) / total

    def _floor_drawn_share(self) -> float:
        """Share of the pool the policy floor drew (`EpisodeSample.floor_drawn`); nan when the
        samples do not say (no floor)."""
        samples = self.pool.samples()
        if not samples or all(s.floor_share is None for s in samples):
            return math.nan
        return sum(s.floor_drawn for s in samples) / len(samples)

    def stats(self) -> dict[str, Any]:
        """Plain numbers for the result dict."""
        with self._data_lock:
            return {
                "labels": self.budget.granted,
                "label_budget": self.budget.total,
                "labels_remaining": self.budget.remaining,
                "rm_version": self.version,
                "rm_accuracy": self.accuracy(),
                "rm_loss": self.last_train.get("loss", math.nan),
                "rm_train_steps": 0 if self.trainer is None else self.trainer.steps,
                "rm_pretrain_steps": 0 if self.trainer is None else self.trainer.pretrain_steps,
                "rm_refits": 0 if self.trainer is None else self.trainer.refits,
                "rm_passes": 0.0 if self.trainer is None else self.trainer.passes,
                "rm_final_refitted": int(self.trainer is not None and self.trainer.final_refitted),
                "rm_contrastive_loss": self.last_pretrain.get("contrastive_loss", math.nan),
                "pool": len(self.pool),
                "pool_floor_drawn": self._floor_drawn_share(),
                "episodes_received": self.pool.received,
                "env_runners_sending": sorted(self._senders),
                **self.counts,
            }

"""`RewardModelTrainer`: fits a `RewardEnsemble` to a growing set of labels (plain torch).

Labels of every kind (preference, ranking, rating, binary) live in one list and are mixed in
each minibatch; each kind's loss from `mmrlhf.feedback.losses` is weighted by its share of the
minibatch. A tie marked "both bad" or "both good" also judges each of its episodes on its own,
with the binary loss (read as a log-probability's Bernoulli for the answer_logits head,
as log-odds for the others). Every
member draws its own minibatches with replacement (a bootstrap, as in Christiano et al. 2017),
so members disagree where the labels leave the reward open, which is what active query
selection looks for.

Labels are scarce but episodes are not. `pretrain` aligns each member's pooled image and prompt
embeddings on unlabelled episodes (symmetric InfoNCE; identical prompts are not counted as
negatives): a question names what is in its picture ("what colour is the circle?"), so the
encoders learn colours and shapes from free data and the few labels only have to teach how an
answer relates to them (semi-supervised reward learning; measured in docs/architecture.md).

Accuracy on labels the model has not trained on is measured by `evaluate`; `add_labels`
returns the accuracy on the new labels *before* they join the training set (progressive
validation: a held-out number that costs no labels).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import torch

from mmrlhf.feedback.config import ANSWER_HEADS, RMWinners, WinnerTermFrom
from mmrlhf.feedback.losses import (
    PAD_RANK,
    binary_loss,
    bradley_terry_loss,
    log_prob_binary_loss,
    plackett_luce_loss,
    rating_loss,
)
from mmrlhf.feedback.preferences import (
    PreferenceLabel,
    RankingLabel,
    RatingLabel,
    RLHFLabel,
    judged_good,
    own_judgements,
    pairwise_outcomes,
    strict_winners,
)
from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModel, token_weights
from mmrlhf.feedback.samples import EpisodeSample, stack_samples
from mmrlhf.models.contrastive import content_ids, info_nce

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerSettings:
    """Optimisation settings of the reward model.

    Attributes:
        lr: Adam learning rate.
        weight_decay: AdamW weight decay (keeps rewards from growing without bound).
        batch_size: Labels per minibatch (per member).
        epochs: Passes over the label set per `train` call (in expectation: minibatches are
            drawn with replacement).
        min_steps: Minibatches per `train` call at least (few labels still get fitted).
        max_steps: Cap on minibatches per `train` call (None = no cap).
        seed: Seeds the members' minibatch draws.
        contrastive_batch: Unlabelled episodes per member and step of `pretrain`.
        contrastive_temperature: InfoNCE softmax temperature of `pretrain`.
        refit_growth: Refit (see `RewardModelTrainer.refit`) whenever the label set has grown
            by this factor since the last refit; None = never, train in place only.
        refit_epochs: Passes over the labels of one refit (not capped by `max_steps`).
        settle_epochs: Passes over an unchanged label set that `settled` asks for: training
            goes on without new labels until the set has had this many since it last changed
            (a refit's passes count). None = train only when labels arrive.
        winner_weight: Weight of the demonstration term: minus log P(right)
            (`RewardModel.log_prob_right`) of every strict winner in the minibatch (the
            preferred episode of a pair, the single best of a ranking). Only for the answer
            heads: with `answer_logits` (reward = the response's log-likelihood) the term
            fits the winners' answers as the answers to their scenes, against every other
            answer the head can give, not just the one they beat; with `answer_sigmoid` it
            raises the winner's own odds only.
            Right where one answer is the best (vqa, retrieval); a bias where answers are
            graded on a scale. 0 = off.
        winner_softmax: For `answer_sigmoid`: fit each winner with the softmax over the
            head's logits (`RewardModel.answer_log_likelihood`), so a right answer also
            pushes every other answer to its scene down, as a supervised label would, instead
            of raising its own odds only. For `answer_logits` that is what the term does
            anyway (its reward is that log-likelihood).
        winners: Which episodes the winner term fits: `strict` (strict winners,
            `strict_winners`) or `judged_good` (every episode a label showed right: strict
            winners, both episodes of a "both good" tie, thumbs up; `judged_good`).
        winner_term_from: When `winner_softmax` and `winners` apply: from the first fit
            (`start`), or from the final refit on (`final_refit`: `train(final=True)` when
            it refits), the strict own-odds term fitting the labels before. Offline, the
            softmax over judged-good episodes lifted a finished label set's held-out ceiling
            from 0.496 to 0.786, but online, collecting under it narrowed the labels
            (docs/architecture.md).
        winner_prior_adjust: Logit adjustment (Menon et al. 2021) of the softmax winner
            term: tau in `logits + tau * log pi(answer | prompt)`, pi the share of the
            winners with the same prompt that gave each word (one pseudo-count spread over
            the vocabulary). The reward reads the unadjusted logits. A label set that
            confirms one answer per question fitted plainly teaches that answer as the
            question's prior, which fails wherever the image says otherwise (held-out
            colour-shape pairs); adjusted, the prior is given, and the logits learn what the
            image adds to it. 0 = off.
    """

    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: float = 4.0
    min_steps: int = 50
    max_steps: int | None = 400
    seed: int = 0
    contrastive_batch: int = 256
    contrastive_temperature: float = 0.1
    refit_growth: float | None = None
    refit_epochs: float = 40.0
    settle_epochs: float | None = None
    winner_weight: float = 0.0
    winner_softmax: bool = False
    winners: RMWinners = "strict"
    winner_term_from: WinnerTermFrom = "start"
    winner_prior_adjust: float = 0.0

    def __post_init__(self) -> None:
        if self.winner_prior_adjust < 0:
            raise ValueError(f"winner_prior_adjust must be >= 0, got {self.winner_prior_adjust}")
        if self.winner_prior_adjust > 0 and not self.winner_softmax:
            raise ValueError("winner_prior_adjust adjusts the softmax winner term: it needs "
                             "winner_softmax=True")  # fmt: skip
        if self.winners not in get_args(RMWinners):
            raise ValueError(f"winners must be one of {get_args(RMWinners)}, got {self.winners!r}")
        if self.winner_term_from not in get_args(WinnerTermFrom):
            raise ValueError(
                f"winner_term_from must be one of {get_args(WinnerTermFrom)}, got "
                f"{self.winner_term_from!r}"
            )
        if self.winner_weight < 0:
            raise ValueError(f"winner_weight must be >= 0, got {self.winner_weight}")
        if self.settle_epochs is not None and self.settle_epochs <= 0:
            raise ValueError(f"settle_epochs must be > 0 or None, got {self.settle_epochs}")
        if self.refit_growth is not None and self.refit_growth <= 1.0:
            raise ValueError(f"refit_growth must be > 1 or None, got {self.refit_growth}")
        if self.refit_epochs <= 0:
            raise ValueError(f"refit_epochs must be > 0, got {self.refit_epochs}")
        if self.contrastive_batch < 2 or self.contrastive_temperature <= 0:
            raise ValueError(
                f"need contrastive_batch >= 2 and contrastive_temperature > 0, got "
                f"{self.contrastive_batch} and {self.contrastive_temperature}"
            )


class RewardModelTrainer:
    """Holds the labels and the episodes they name, and trains the ensemble on them.

    Args:
        ensemble: The model (trained in place).
        settings: Optimisation settings.
    """

    def __init__(self, ensemble: RewardEnsemble, settings: TrainerSettings | None = None) -> None:
        self.ensemble = ensemble
        self.settings = settings or TrainerSettings()
        if self.settings.winner_weight > 0 and ensemble.spec.head not in ANSWER_HEADS:
            raise ValueError(
                f"winner_weight > 0 needs one of the reward model's answer heads {ANSWER_HEADS} "
                f"(they read a reward as log P(right)); this ensemble has the "
                f"{ensemble.spec.head!r} head"
            )
        self.samples: dict[str, EpisodeSample] = {}
        self.labels: list[RLHFLabel] = []
        self.optimizer = self._new_optimizer()
        self._rng = np.random.default_rng(self.settings.seed)
        self.steps = 0
        self.pretrain_steps = 0
        self.anchor: dict[str, torch.Tensor] | None = None
        self.refits = 0
        self._refit_labels = 0  # label-set size at the last refit
        self.passes = 0.0  # expected passes over the label set since it last changed
        self.final_refitted = False  # a refit with no labels left to come has run
        # (label count, winner kind) -> per-prompt log prior of the winners' words
        self._prior: tuple[tuple[int, RMWinners], dict[str, torch.Tensor]] | None = None

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.ensemble.parameters(), lr=self.settings.lr, weight_decay=self.settings.weight_decay
        )

    # --- data -------------------------------------------------------------------------------

    def add_labels(
        self, labels: Iterable[RLHFLabel], samples: Mapping[str, EpisodeSample]
    ) -> dict[str, float]:
        """Add labels whose episodes are all in `samples` (or already known); return the
        accuracy of the current model on them before they are trained on.

        Returns:
            `{"added": n, "dropped": m, "accuracy": acc or nan, "pairs": strict pairs}`.
        """
        accepted: list[RLHFLabel] = []
        dropped = 0
        for label in labels:
            ids = label.episode_ids
            if all(i in self.samples or i in samples for i in ids):
                for i in ids:
                    self.samples.setdefault(i, samples.get(i) or self.samples[i])
                accepted.append(label)
            else:
                dropped += 1
        if dropped:
            logger.warning("dropped %d labels naming episodes the trainer has not seen", dropped)
        before = self.evaluate(accepted)
        self.labels.extend(accepted)
        if accepted:
            self.passes = 0.0
        return {"added": len(accepted), "dropped": dropped, **before}

    # --- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def rewards(self, samples: Sequence[EpisodeSample], batch_size: int = 256) -> torch.Tensor:
        """Every member's rewards for `samples`, shape (N, B), in batches, eval mode."""
        self.ensemble.eval()
        parts = [
            self.ensemble(stack_samples(samples[i : i + batch_size]))
            for i in range(0, len(samples), batch_size)
        ]
        self.ensemble.train()
        return torch.cat(parts, dim=1) if parts else torch.zeros(len(self.ensemble), 0)

    def evaluate(self, labels: Sequence[RLHFLabel]) -> dict[str, float]:
        """Preference accuracy of the ensemble mean on the strict pairs in `labels`.

        Returns:
            `{"accuracy": fraction of (better, worse) pairs scored in that order (equal
            rewards count half), nan without pairs, "pairs": number of pairs}`.
        """
        pairs = [p for lab in labels if isinstance(lab, PreferenceLabel | RankingLabel)
                 for p in pairwise_outcomes(lab)]  # fmt: skip
        if not pairs:
            return {"accuracy": math.nan, "pairs": 0}
        ids = sorted({i for p in pairs for i in p})
        index = {i: k for k, i in enumerate(ids)}
        mean = self.rewards([self.samples[i] for i in ids]).mean(dim=0)
        better = mean[[index[b] for b, _ in pairs]]
        worse = mean[[index[w] for _, w in pairs]]
        wins = (better > worse).float() + 0.5 * (better == worse).float()
        return {"accuracy": float(wins.mean()), "pairs": len(pairs)}

    # --- training ---------------------------------------------------------------------------

    def train(self, epochs: float | None = None, *, final: bool = False) -> dict[str, Any]:
        """Train every member on its own bootstrap minibatches; return the mean loss, the
        steps and whether this was a refit.

        Refits instead when one is due (`refit_due`).

        Args:
            epochs: Passes over the labels (default `settings.epochs`; a refit uses
                `settings.refit_epochs`).
            final: No more labels will come (the budget is spent): refit once more if any
                arrived since the last refit.
        """
        if self.refit_due(final=final):
            return self.refit(final=final)
        s = self.settings
        passes = s.epochs if epochs is None else epochs
        return {**self._fit(passes, s.max_steps), "refit": False}

    def settled(self) -> bool:
        """Whether the current labels had `settle_epochs` passes since they last changed
        (always True when settling is off or there are no labels).

        A refit's `refit_epochs` passes from the pretrained weights underfit the answer head
        (offline, 500 strict pairs: greedy ceiling 0.757 / 0.250 after 40 passes, 0.924 /
        0.596 after 160), and once the budget is spent no label would trigger more training:
        the policy would spend the rest of the run on the underfitted model.
        """
        target = self.settings.settle_epochs
        return target is None or not self.labels or self.passes >= target

    def set_anchor(self) -> None:
        """Keep the current weights as the start of every later refit (called once the
        contrastive pretraining is done, or when no pretraining is configured)."""
        self.anchor = self.ensemble.weights()

    def refit_due(self, *, final: bool = False) -> bool:
        """Whether `train` should refit: refits are on (`refit_growth`), an anchor is set, and
        the labels grew by `refit_growth` since the last refit (any growth when `final`)."""
        growth = self.settings.refit_growth
        n = len(self.labels)
        if growth is None or self.anchor is None or n == 0:
            return False
        if final:
            return n > self._refit_labels
        return n >= growth * max(self._refit_labels, 1)

    def refit(self, *, final: bool = False) -> dict[str, Any]:
        """Restart every member from the anchor with a fresh optimizer and fit all labels
        with `refit_epochs` passes (`final`: no labels will follow, so from here on the
        winner term is `winner_term_from`'s final form).

        Training in place on a label set that grows from a few dozen labels fits the first
        labels hundreds of times; the model then generalises worse than one fitted on the
        whole set from the pretrained weights (offline, same 1,000 labels: held-out `swap`
        accuracy 0.77-0.79 trained as they arrive, 0.84 with refits each time the set
        doubled, 0.88-0.90 fitted at once; docs/architecture.md). Refits on doubling cost
        about twice the last one in all.
        """
        if self.anchor is None:
            raise RuntimeError("refit() needs an anchor: call set_anchor() first")
        self.ensemble.load_state_dict(self.anchor)
        self.optimizer = self._new_optimizer()
        self.passes = 0.0  # the passes before the refit are gone with their weights
        self.final_refitted = self.final_refitted or final
        out = self._fit(self.settings.refit_epochs, None)
        self._refit_labels = len(self.labels)
        self.refits += 1
        logger.info("reward model refitted on %d labels (%d steps)", len(self.labels),
                    out["steps"])  # fmt: skip
        return {**out, "refit": True}

    def _fit(self, passes: float, max_steps: int | None) -> dict[str, Any]:
        """`passes` bootstrap passes over the labels (at least `min_steps` minibatches, at most
        `max_steps`)."""
        n = len(self.labels)
        if n == 0:
            return {"loss": math.nan, "steps": 0}
        s = self.settings
        steps = max(1, s.min_steps, math.ceil(passes * n / s.batch_size))
        if max_steps is not None:
            steps = min(steps, max_steps)
        self.ensemble.train()
        losses = []
        for _ in range(steps):
            total = torch.zeros(())
            for member in self.ensemble.members:
                idx = self._rng.integers(0, n, size=min(s.batch_size, n))
                total = total + self.loss(member, [self.labels[i] for i in idx])
            losses.append(self._step(total))
        self.steps += steps
        self.passes += steps * min(s.batch_size, n) / n
        return {"loss": float(np.mean(losses)), "steps": steps}

    def pretrain(self, unlabeled: Sequence[EpisodeSample], steps: int) -> dict[str, Any]:
        """Contrastive steps on unlabelled episodes: each member's pooled image and prompt
        embeddings are aligned with symmetric InfoNCE (see the module docstring).

        Args:
            unlabeled: Episodes (their responses and scores are not used); at least two.
            steps: Optimizer steps (each covers every member).

        Returns:
            `{"contrastive_loss": mean InfoNCE over the steps, "steps": steps}`.
        """
        if len(unlabeled) < 2:
            raise ValueError(f"contrastive pretraining needs >= 2 episodes, got {len(unlabeled)}")
        self.ensemble.train()
        losses = []
        for _ in range(steps):
            total = sum(
                (self.contrastive_loss(m, unlabeled) for m in self.ensemble.members),
                torch.zeros(()),
            )
            losses.append(self._step(total))
        self.pretrain_steps += steps
        return {"contrastive_loss": float(np.mean(losses)) if losses else math.nan,
                "steps": steps}  # fmt: skip

    def _step(self, total: torch.Tensor) -> float:
        """One optimizer step on the members' summed loss; return the mean member loss."""
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return float(total.detach()) / len(self.ensemble)

    def contrastive_loss(
        self, member: RewardModel, unlabeled: Sequence[EpisodeSample]
    ) -> torch.Tensor:
        """One member's InfoNCE between image and prompt embeddings on a random batch of
        `unlabeled` episodes (drawn without replacement)."""
        size = min(self.settings.contrastive_batch, len(unlabeled))
        idx = self._rng.choice(len(unlabeled), size=size, replace=False)
        batch = stack_samples([unlabeled[i] for i in idx])
        image, text = member.embeddings(batch.image, batch.prompt)
        return info_nce(
            image,
            text,
            temperature=self.settings.contrastive_temperature,
            image_ids=content_ids(batch.image),
            text_ids=content_ids(batch.prompt),
        )

    def loss(self, member: RewardModel, labels: Sequence[RLHFLabel]) -> torch.Tensor:
        """One member's loss on a minibatch of mixed labels (kinds weighted by their share)."""
        ids = sorted({i for lab in labels for i in lab.episode_ids})
        index = {i: k for k, i in enumerate(ids)}
        batch = stack_samples([self.samples[i] for i in ids])
        features = member.features(batch.image, batch.prompt)
        r = member.score(features, batch.response)
        parts: list[tuple[torch.Tensor, int]] = []
        prefs = [lab for lab in labels if isinstance(lab, PreferenceLabel)]
        if prefs:
            a = r[[index[p.a] for p in prefs]]
            b = r[[index[p.b] for p in prefs]]
            p_a = torch.tensor([p.p_a for p in prefs], dtype=r.dtype)
            parts.append((bradley_terry_loss(a, b, p_a), len(prefs)))
        rankings = [lab for lab in labels if isinstance(lab, RankingLabel)]
        if rankings:
            k = max(len(lab.episodes) for lab in rankings)
            cols = torch.zeros(len(rankings), k, dtype=torch.long)
            ranks = torch.full((len(rankings), k), PAD_RANK, dtype=torch.long)
            for row, lab in enumerate(rankings):
                cols[row, : len(lab.episodes)] = torch.tensor([index[e] for e in lab.episodes])
                ranks[row, : len(lab.ranks)] = torch.tensor(lab.ranks)
            parts.append((plackett_luce_loss(r[cols], ranks), len(rankings)))
        ratings = [lab for lab in labels if isinstance(lab, RatingLabel)]
        if ratings:
            y = torch.tensor([lab.value for lab in ratings], dtype=r.dtype)
            parts.append((rating_loss(r[[index[lab.episode] for lab in ratings]], y), len(ratings)))
        # Thumbs up/down, and both episodes of a "both good" / "both bad" tie.
        judged = own_judgements(labels)
        if judged:
            y = torch.tensor([float(good) for _, good in judged], dtype=r.dtype)
            # The answer_logits head's reward is a log-probability: read it as one.
            judge = log_prob_binary_loss if member.head_kind == "answer_logits" else binary_loss
            parts.append((judge(r[[index[e] for e, _ in judged]], y), len(judged)))
        total = sum(n for _, n in parts)
        out = sum((loss * (n / total) for loss, n in parts), torch.zeros(()))
        softmax, kind = self.winner_form()
        winners = self._winners(labels, kind) if self.settings.winner_weight > 0 else []
        if winners:
            rows = [index[w] for w in winners]
            if softmax:
                offset = None
                if self.settings.winner_prior_adjust > 0:
                    prior = self.winner_log_prior(kind)
                    offset = self.settings.winner_prior_adjust * torch.stack(
                        [prior[self.samples[w].prompt_key] for w in winners]
                    )
                won = member.answer_log_likelihood(features[rows], batch.response[rows], offset)
            else:
                won = member.log_prob_right(r[rows])
            out = out - self.settings.winner_weight * won.mean()
        return out

    def winner_form(self) -> tuple[bool, RMWinners]:
        """(softmax, winners) of the winner term now: the settings', or the strict own-odds
        term until the final refit when `winner_term_from` is `final_refit`."""
        s = self.settings
        if s.winner_term_from == "final_refit" and not self.final_refitted:
            return False, "strict"
        return s.winner_softmax, s.winners

    def winner_log_prior(self, kind: RMWinners) -> dict[str, torch.Tensor]:
        """log pi(word | prompt) (V,) per prompt of the winners of all labels (`kind`'s):
        each winner's response tokens share one count, and one pseudo-count is spread
        evenly over the vocabulary. Cached until the labels change."""
        key = (len(self.labels), kind)
        if self._prior is not None and self._prior[0] == key:
            return self._prior[1]
        vocab = self.ensemble.spec.vocab_size
        counts: dict[str, torch.Tensor] = {}
        winners = [self.samples[w] for w in self._winners(self.labels, kind)]
        if winners:
            responses = torch.from_numpy(np.stack([s.response_ids for s in winners])).long()
            for sample, ids, share in zip(winners, responses, token_weights(responses),
                                          strict=True):  # fmt: skip
                counts.setdefault(sample.prompt_key, torch.zeros(vocab)).index_add_(0, ids, share)
        prior = {q: torch.log((c + 1.0 / vocab) / (c.sum() + 1.0)) for q, c in counts.items()}
        self._prior = (key, prior)
        return prior

    def _winners(self, labels: Sequence[RLHFLabel], kind: RMWinners | None = None) -> list[str]:
        """The episodes the winner term fits, each once: `kind`'s (default: `winner_form`'s)."""
        strict = (kind or self.winner_form()[1]) == "strict"
        return list(dict.fromkeys(strict_winners(labels) if strict else judged_good(labels)))


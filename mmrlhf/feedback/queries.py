"""Which episodes to ask about, and how many labels to ask for when.

- `QuerySchedule`: labels planned after each training iteration (constant or decaying per
  iteration, plus an initial batch), so the label budget is spread over the run.
- `select_queries`: queries of k episodes (k = 2: a pair) from a pool, preferring episodes
  with the same prompt (comparing answers to one question is what people do best), or
  different answers to the very same scene (`group="scene"`).
  `random` takes candidates as they come; `active` and `optimistic` draw `candidates` times
  more and keep the best by a value computed from the reward-model ensemble:
  - `active`: how much the members disagree about the outcome (Christiano et al. 2017);
  - `optimistic`: the highest upper confidence bound (ensemble mean + std) among the query's
    episodes. While the policy is weak most answers are wrong, and two wrong answers are a tie
    that teaches nothing (on vqa early on, 70% of random same-prompt pairs). A query holding
    the episode most likely to be right is more often a strict preference, and it checks the
    model where the policy will push: its favourite answers.

  - `novel`: challenger queries. Each pairs an answer the labels have rarely judged (counts
    by `feedback.novelty.judgement_key`), unless the model is sure it is worse than the rest,
    with the answers to the same prompt the model would bet on. Queries
    built around the policy's favourite answers never ask about an answer the policy gives
    rarely, so a right answer it has nearly dropped is never shown right; a challenger
    query asks about exactly those, against the answer the reward model would bet on.

  By default (`rank="group"`) candidates compete only with candidates of their own prompt:
  each query's prompt is drawn as `random` draws it, then the best candidate of that prompt
  is taken, so the labels' question mix follows the episodes'. Ranked all together
  (`rank="pool"`), values of different prompts are compared, and a prompt whose answers
  score higher by nature takes the queries: on vqa with the answer_logits reward model (a
  log-likelihood, higher where a question has fewer possible answers) optimistic queries
  went to shape questions for 93% of the first 300 labels, and the reward model never
  learnt colours.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

import numpy as np

from mmrlhf.feedback.config import QueryChallengers, QueryGroup, QueryMode, QueryRank
from mmrlhf.feedback.kinds import (
    answer_word,
    kind_tiers,
    known_words,
    of_known_kind,
    wording_kin,
)
from mmrlhf.feedback.novelty import judgement_key, prompt_answer_key
from mmrlhf.feedback.samples import EpisodeSample

logger = logging.getLogger(__name__)

QUERY_MODES: tuple[str, ...] = get_args(QueryMode)
QUERY_GROUPS: tuple[str, ...] = get_args(QueryGroup)
QUERY_RANKS: tuple[str, ...] = get_args(QueryRank)
QUERY_CHALLENGERS: tuple[str, ...] = get_args(QueryChallengers)
# Member rewards for a list of samples: an array (N members, B samples).
ScoreFn = Callable[[Sequence[EpisodeSample]], np.ndarray]
# How well the answers shown right so far explain each sample's scene: an array (B,), higher
# = better (the hub gives the probability that the best of them is right).
SceneFitFn = Callable[[Sequence[EpisodeSample]], np.ndarray]


@dataclass(frozen=True)
class QuerySchedule:
    """Labels to ask for by the end of each iteration.

    Iteration t (1-based) plans round(per_iteration / (1 + decay * (t - 1))) labels, and the
    first also `initial`; `owed` is what is planned so far minus what was already obtained, so
    skipped queries are asked again later. The label budget caps the total separately.

    Attributes:
        per_iteration: Labels planned for iteration 1 (>= 0).
        decay: 0 = constant; > 0 = fewer labels later, as the reward model settles.
        initial: Extra labels in the first iteration.
    """

    per_iteration: int
    decay: float = 0.0
    initial: int = 0

    def __post_init__(self) -> None:
        if self.per_iteration < 0 or self.decay < 0 or self.initial < 0:
            raise ValueError(f"QuerySchedule fields must be >= 0, got {self}")

    def at(self, iteration: int) -> int:
        """Labels planned for iteration `iteration` alone."""
        if iteration < 1:
            return 0
        n = round(self.per_iteration / (1.0 + self.decay * (iteration - 1)))
        return n + (self.initial if iteration == 1 else 0)

    def planned(self, iteration: int) -> int:
        """Labels planned for iterations 1..`iteration` together."""
        return sum(self.at(t) for t in range(1, iteration + 1))

    def owed(self, iteration: int, obtained: int) -> int:
        """Labels to ask for now, having `obtained` so far."""
        return max(0, self.planned(iteration) - obtained)


# What a query's episodes share, per tier: (group key, slot key) of (index, sample). A query
# takes k different slots of one group, one episode from each; a scene's slots are its
# distinct responses (two equal responses to one scene are a certain tie), elsewhere each
# episode is its own slot.
_Key = Callable[[int, EpisodeSample], object]
_TIER_KEYS: dict[str, tuple[_Key, _Key]] = {
    "scene": (lambda i, s: s.scene_key, lambda i, s: s.response_key),
    "prompt": (lambda i, s: s.prompt_key, lambda i, s: i),
    "none": (lambda i, s: None, lambda i, s: i),
}


def _groups(samples: Sequence[EpisodeSample], eligible: Sequence[int], k: int, tier: str
            ) -> list[list[list[int]]]:  # fmt: skip
    """The tier's groups with at least k slots, each a list of slots (episode indices), in
    order of first appearance."""
    group_key, slot_key = _TIER_KEYS[tier]
    groups: dict[object, dict[object, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i in eligible:
        groups[group_key(i, samples[i])][slot_key(i, samples[i])].append(i)
    return [list(slots.values()) for slots in groups.values() if len(slots) >= k]


def candidate_queries(
    samples: Sequence[EpisodeSample],
    n: int,
    *,
    k: int,
    rng: np.random.Generator,
    group: QueryGroup = "prompt",
    exclude: Collection[str] = (),
) -> list[tuple[int, ...]]:
    """Up to `n` distinct queries: tuples of k different indices into `samples`.

    Queries come from the finest grouping `group` allows that still has candidates, and the
    next coarser one tops them up:
    - `scene`: different responses to one scene (same image and prompt; needs an env with
      `scene_repeats >= k`): only the answers differ, as in a person's side-by-side view;
    - `prompt`: episodes that share a prompt (a prompt is drawn with probability proportional
      to its episodes);
    - `none`: any episodes of the pool.
    Episodes whose id is in `exclude` are not used.
    """
    if k < 2:
        raise ValueError(f"a query needs k >= 2 episodes, got {k}")
    if group not in QUERY_GROUPS:
        raise ValueError(f"query group must be one of {QUERY_GROUPS}, got {group!r}")
    eligible = [i for i, s in enumerate(samples) if s.episode_id not in exclude]
    if len(eligible) < k or n <= 0:
        return []
    seen: set[tuple[int, ...]] = set()
    out: list[tuple[int, ...]] = []
    # QUERY_GROUPS runs finest first; each coarser tier tops the queries up.
    for tier in QUERY_GROUPS[QUERY_GROUPS.index(group) :]:
        if len(out) >= n:
            break
        groups = _groups(samples, eligible, k, tier)
        if not groups:
            continue
        sizes = np.array([len(g) for g in groups], dtype=float)
        for _ in range(3 * (n - len(out))):  # duplicates are rare; the cap ends tiny tiers
            if len(out) >= n:
                return out
            slots = groups[int(rng.choice(len(groups), p=sizes / sizes.sum()))]
            picked = rng.choice(len(slots), size=k, replace=False)
            query = tuple(int(slots[j][int(rng.integers(len(slots[j])))]) for j in picked)
            key = tuple(sorted(query))
            if key not in seen:
                seen.add(key)
                out.append(query)
    return out


def disagreement(member_scores: np.ndarray) -> float:
    """How much ensemble members disagree about a query's outcome.

    Args:
        member_scores: Rewards (N members, k episodes).

    Returns:
        Mean over episode pairs (i < j) of the standard deviation across members of
        P(i better than j) = sigmoid(r_i - r_j); 0 when every member agrees.
    """
    k = member_scores.shape[1]
    values = []
    for i in range(k):
        for j in range(i + 1, k):
            p = 1.0 / (1.0 + np.exp(-(member_scores[:, i] - member_scores[:, j])))
            values.append(float(np.std(p)))
    return float(np.mean(values)) if values else 0.0


def upper_bound(member_scores: np.ndarray) -> float:
    """The best upper confidence bound among a query's episodes: max over episodes of the
    members' mean reward plus their standard deviation.

    Args:
        member_scores: Rewards (N members, k episodes).
    """
    return float(np.max(member_scores.mean(axis=0) + member_scores.std(axis=0)))


def select_queries(
    samples: Sequence[EpisodeSample],
    n: int,
    *,
    k: int = 2,
    mode: QueryMode = "random",
    rng: np.random.Generator,
    score_fn: ScoreFn | None = None,
    candidates: int = 10,
    group: QueryGroup = "prompt",
    exclude: Collection[str] = (),
    rank: QueryRank = "group",
    judged: Mapping[str, int] | None = None,
    novelty: float = 1.0,
    challengers: QueryChallengers = "any",
    shown_right: Mapping[str, int] | None = None,
    give_up: int = 0,
    partner_novelty: float = 0.0,
    judged_by_prompt: Mapping[tuple[str, str], int] | None = None,
    scene_fit: SceneFitFn | None = None,
    confirmations: int = 1,
    give_up_rounds: int = 1,
    spread_questions: bool = False,
    right_words: Mapping[str, Collection[int]] | None = None,
) -> list[list[EpisodeSample]]:
    """Pick `n` queries of `k` episodes from `samples`.

    Args:
        samples: The pool to choose from.
        n: Queries wanted (fewer when the pool is small).
        k: Episodes per query (2 = pairwise preference, more = ranking).
        mode: `random`, `active`, `optimistic` or `novel` (all but `random` need
            `score_fn`; `novel` also `judged`).
        rng: Randomness for the candidates.
        score_fn: Member rewards of samples, shape (N, B) (active and optimistic modes).
        candidates: Active and optimistic modes draw `candidates * n` candidate queries.
        group: Which episodes a query compares first: `scene`, `prompt` or `none` (see
            `candidate_queries`).
        exclude: Episode ids not to ask about (already labelled).
        rank: Active and optimistic modes: `group` ranks candidates within their prompt
            (the prompt drawn as random mode draws it), `pool` all together (see the module
            docstring).
        judged: Novel mode: labelled episodes per `novelty.judgement_key` so far.
        novelty: Novel mode: weight of the novelty term (see `novel_queries`).
        challengers: Novel mode: `any` episode may be a challenger, or only those the
            policy floor drew (`floor`; see `novel_queries`).
        shown_right: Novel mode, floor challengers: labelled episodes per judgement key
            that the labels showed right.
        give_up: Novel mode, floor challengers: see `novel_queries`.
        partner_novelty: Novel mode: weight of the partners' novelty (see `novel_queries`).
        judged_by_prompt: Novel mode: labelled episodes per (prompt, response) key
            (`novelty.prompt_answer_key`).
        scene_fit: Novel mode, floor challengers with a give-up: how well the answers shown
            right explain each sample's scene (see `novel_queries`); None = scenes at random.
        confirmations: Novel mode, floor challengers with a give-up: labels showing an
            answer right before it leaves the rotation (see `novel_queries`).
        give_up_rounds: Novel mode, floor challengers with a give-up: rounds of the
            rotation (see `novel_queries`).
        spread_questions: Novel mode, with `scene_fit`: spread an answer's tries over
            questions (see `novel_queries`).
        right_words: Novel mode, with `spread_questions`: one-word answers shown right per
            prompt key, to place answers by their kind (see `novel_queries`).
    """
    if mode not in QUERY_MODES:
        raise ValueError(f"query mode must be one of {QUERY_MODES}, got {mode!r}")
    if rank not in QUERY_RANKS:
        raise ValueError(f"query rank must be one of {QUERY_RANKS}, got {rank!r}")
    if mode == "novel" and score_fn is not None:
        return novel_queries(
            samples, n, k=k, rng=rng, score_fn=score_fn, judged=judged or {},
            novelty=novelty, exclude=exclude, challengers=challengers,
            shown_right=shown_right, give_up=give_up, partner_novelty=partner_novelty,
            judged_by_prompt=judged_by_prompt, scene_fit=scene_fit,
            confirmations=confirmations, give_up_rounds=give_up_rounds,
            spread_questions=spread_questions, right_words=right_words,
        )  # fmt: skip
    if mode == "random" or score_fn is None:
        chosen = candidate_queries(
            samples, n, k=k, rng=rng, group=group, exclude=exclude
        )
        return [[samples[i] for i in q] for q in chosen]
    pool = candidate_queries(
        samples, max(n, math.ceil(candidates * n)), k=k, rng=rng, group=group,
        exclude=exclude,
    )  # fmt: skip
    if not pool:
        return []
    used = sorted({i for q in pool for i in q})
    column = {i: c for c, i in enumerate(used)}
    scores = np.asarray(score_fn([samples[i] for i in used]))
    value = disagreement if mode == "active" else upper_bound
    values = np.asarray([value(scores[:, [column[i] for i in q]]) for q in pool])
    if rank == "pool":
        # Highest value first; equal values keep the random candidate order.
        order = [int(j) for j in np.argsort(-values, kind="stable")[:n]]
    else:
        order = best_per_drawn_group(pool, values, [_group_of(samples, q) for q in pool], n, rng)
    return [[samples[i] for i in pool[j]] for j in order]


def _group_of(samples: Sequence[EpisodeSample], query: Sequence[int]) -> str | None:
    """The prompt a query's episodes share (None when they do not share one)."""
    keys = {samples[i].prompt_key for i in query}
    return next(iter(keys)) if len(keys) == 1 else None


def best_per_drawn_group(
    pool: Sequence[object],
    values: np.ndarray,
    groups: Sequence[object],
    n: int,
    rng: np.random.Generator,
) -> list[int]:
    """Indices of up to `n` candidates: each time, a group drawn with probability in proportion
    to its candidates left, and its highest-valued candidate left (ties: pool order).

    `candidate_queries` draws a prompt in proportion to its episodes, so drawing groups in
    proportion to their candidates keeps that mix.
    """
    by_group: dict[object, list[int]] = defaultdict(list)
    for j in np.argsort(-values, kind="stable"):
        by_group[groups[int(j)]].append(int(j))
    names = list(by_group)
    chosen: list[int] = []
    while len(chosen) < min(n, len(pool)):
        left = np.array([len(by_group[g]) for g in names], dtype=float)
        g = names[int(rng.choice(len(names), p=left / left.sum()))]
        chosen.append(by_group[g].pop(0))
    return chosen


def novel_queries(
    samples: Sequence[EpisodeSample],
    n: int,
    *,
    k: int,
    rng: np.random.Generator,
    score_fn: ScoreFn,
    judged: Mapping[str, int],
    novelty: float = 1.0,
    scan: int = 256,
    exclude: Collection[str] = (),
    challengers: QueryChallengers = "any",
    shown_right: Mapping[str, int] | None = None,
    give_up: int = 0,
    partner_novelty: float = 0.0,
    judged_by_prompt: Mapping[tuple[str, str], int] | None = None,
    scene_fit: SceneFitFn | None = None,
    confirmations: int = 1,
    give_up_rounds: int = 1,
    spread_questions: bool = False,
    right_words: Mapping[str, Collection[int]] | None = None,
) -> list[list[EpisodeSample]]:
    """Up to `n` challenger queries (see the module docstring), each of one prompt's episodes.

    For each query a prompt is drawn in proportion to its unused episodes (among prompts
    whose episodes hold at least k different responses) and up to `scan` of them are scored.
    The challenger is the episode with the highest

        min(0, z) + novelty / sqrt(1 + m),

    z its upper bound (`upper_bound`) z-scored within the prompt's scanned episodes, m the
    labelled episodes with its response (`novelty.judgement_key`): an answer the labels have
    rarely judged, unless the reward model is sure it is worse than the others (answers of
    the wrong kind, which a policy with a probability floor still gives). Only a low bound
    counts against it; a high one does not count for it, or the model's favourite, which
    the labels have checked most, would be its own challenger. The other k - 1 are the
    highest upper bounds among the rest with other responses: the answers the model would
    bet on. An episode is used once; a challenger's response counts as judged once
    more for the rest of the round, so one round does not ask about one new answer again
    and again.

    With `challengers="floor"` only episodes the policy floor's uniform part drew
    (`EpisodeSample.floor_drawn`) may be challengers, and the reward model does not choose
    among them: the challenger is the least-judged answer among them (ties at random). The
    policy gives a rarely given answer where its reward model, or its own habits, put it,
    and a model that has seen an answer only wrong rates it lowest everywhere: on vqa such
    answers were rarely put to the labels again (six of ten colour and shape words ever
    shown right after 1,000 labels; with floor draws chosen by z, orange was a challenger on
    two colour questions in 1,000 labels). The floor's draws are uniform answers, blind to
    the scene, so a challenger from them is right as often as its answer is right on a
    random scene. The partners still come from every episode, by the model's bet.

    With `give_up` > 0 an answer stays among the floor challengers only until a label has
    shown it right (`shown_right`) or `give_up` labelled episodes have given it without one:
    an answer that is never right (on vqa, 18 of 28) otherwise takes as many labels as one
    that is. With `confirmations` = m > 1 an answer shown right stays until m labels have
    shown it right (the give-up no longer applies to it): an answer shown right once is
    barely taught, and the partners, the model's bets, rarely give it. Once no floor draw in
    the pool has an answer left, challengers are chosen as with `challengers="any"`.

    With `spread_questions` as well, `scene_fit` must be the probability that a known
    answer is right, and the draw picked is the one with the highest

        (1 - scene_fit) / (1 + t),

    t the labelled episodes that gave its answer to its prompt (`judged_by_prompt`, this
    round's challengers added): the chance that its scene's answer is unknown, discounted
    where the answer has already failed at that question. A question the model explains
    badly on every scene is unexplained on all of them, and the pool measure alone sent
    one word there again and again (on vqa, yellow: 10 of 28 tries on "what color is the
    square ?", which yellow never answers in the training split, and 11 on "what shape is
    the orange object ?", a question about a colour no label had shown right).

    With `spread_questions` and no `scene_fit`, every scene counts as unexplained (fit 0):
    the draw picked is the one whose answer failed least at its question, ties at random.
    A floor draw's scene is then a random scene of its question, right as often as its
    answer is right there, however wrong the reward model's picture of the scenes.

    With `right_words` as well (one-word answers shown right per prompt key), questions
    are tried by tier first (`kinds.kind_tiers`): those whose known answers fill the same
    slot of the questions' wording as the challenger's answer (`kinds.wording_kin`: a
    colour for the colour questions), then those with nothing known, then those whose
    known answers are of another kind.

    With `give_up_rounds` = r > 1 a give-up is not for good: once no floor draw in the pool
    has an answer left, the answers never shown right come back for another `give_up`
    labelled episodes each, up to r rounds (`rotation_give_up`). The first round's tries
    come early, while the labels have shown few answers right; at unexplained scenes
    (`scene_fit`) that sent words to questions of another kind (on vqa all 16 of purple's
    tries came in the first 322 labels, 8 of them on shape questions), and later tries
    meet a reward model that explains most scenes. With `right_words`, only answers of a
    known kind come back (`kinds.of_known_kind`: a kin of theirs shown right): on vqa the
    18 answers that fill no slot of a colour or shape question (numbers, positions, yes and
    no) took 576 of 1,000 labels with two rounds of 16.

    With `scene_fit` (or `spread_questions`) as well, the challenger is chosen from the
    whole pool, not from a prompt drawn first: the least-judged open answer, at the floor
    draw whose scene the answers already shown right explain least (`scene_fit`, lowest
    first; its prompt then supplies the partners). A floor draw is right only as often as
    its answer is right on a random scene (on vqa a colour about 1 in 12), so with 24 tries
    a colour was never shown right in about one run of two, and the labels then never taught
    it. Where a scene's known answers all score low, its answer is likely one the labels
    have not shown right yet: a question about an orange object, once the other five colours
    are known. But a question of a kind with no known answer yet is unexplained on every
    scene, so early on a shape word went to colour questions (23 of triangle's 24 tries in
    one vqa run; docs/architecture.md, "Challengers where the known answers do not fit").

    With `partner_novelty` > 0 the partners are the episodes with the highest

        z + partner_novelty / sqrt(1 + r),

    r the labelled episodes with the same prompt and response (`judged_by_prompt`, once
    more for each time it partners in this round): the model's bets, spread over the
    answers the labels have judged least for this question. The best bet alone is the
    policy's favourite answer per question, and on vqa that answer ("diamond" to shape
    questions) made most of the episodes the labels showed right, so the labels confirmed a
    few colour-shape pairs many times and the reward model learnt those pairs, not the
    colours and shapes. Labelled, not shown right: an answer that is never right for the
    question (a held-out pair) would otherwise keep the whole novelty.
    """
    if k < 2:
        raise ValueError(f"a query needs k >= 2 episodes, got {k}")
    if challengers not in QUERY_CHALLENGERS:
        raise ValueError(f"challengers must be one of {QUERY_CHALLENGERS}, got {challengers!r}")
    if confirmations < 1:
        raise ValueError(f"confirmations must be >= 1, got {confirmations}")
    if give_up_rounds < 1:
        raise ValueError(f"give_up_rounds must be >= 1, got {give_up_rounds}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        if sample.episode_id not in exclude:
            groups[sample.prompt_key].append(i)
    counts = dict(judged)
    right = shown_right or {}
    # Partner counts, this round's partnerings added: only kept when they weigh the bets.
    partnered = Counter(judged_by_prompt or {}) if partner_novelty > 0 else None
    # Floor challengers with a give-up: answers leave the rotation as they settle.
    rotating = challengers == "floor" and give_up > 0
    limit = give_up
    returning: set[str] = set()  # the answers later rounds bring back
    kin: dict[int, frozenset[int]] = {}
    if rotating:
        draws = [samples[i] for idx in groups.values() for i in idx if samples[i].floor_drawn]
        drawn = {judgement_key(s) for s in draws}
        returning = drawn
        if right_words is not None:  # only answers whose kind answers some question
            # One wording per prompt: the pool holds thousands of episodes of a few questions.
            kin = wording_kin({s.prompt_key: s.prompt_ids for s in samples}.values())
            known = known_words(right_words)
            returning = {judgement_key(s) for s in draws
                         if of_known_kind(answer_word(s), known, kin)}  # fmt: skip
        limit = rotation_give_up(
            drawn, counts, right, give_up, give_up_rounds, confirmations, returning=returning
        )

    def open_answer(sample: EpisodeSample) -> bool:
        if not rotating:
            return True
        key = judgement_key(sample)
        return _open(key, counts, right, limit if key in returning else give_up, confirmations)

    eligible = {
        i for idx in groups.values() for i in idx
        if challengers == "any" or (samples[i].floor_drawn and open_answer(samples[i]))
    }  # fmt: skip
    if rotating and not eligible:  # every answer settled: the model's challengers
        challengers, rotating = "any", False
        eligible = {i for idx in groups.values() for i in idx}
    fit: dict[int, float] = {}
    if rotating and (scene_fit is not None or spread_questions):
        order = sorted(eligible)
        if scene_fit is None:  # no model of the scenes: any may hold an unknown answer
            values = np.zeros(len(order))
        else:
            values = np.asarray(scene_fit([samples[i] for i in order]), dtype=float)
        if values.shape != (len(order),):
            raise ValueError(
                f"scene_fit must return one value per sample, shape ({len(order)},), "
                f"got {values.shape}"
            )
        if spread_questions and values.size and not (0 <= values.min() <= values.max() <= 1):
            raise ValueError(
                "with spread_questions, scene_fit must return probabilities in [0, 1], got "
                f"values in [{values.min():.3g}, {values.max():.3g}]"
            )
        fit = dict(zip(order, values.tolist(), strict=True))
    # Labelled episodes per (prompt, answer), this round's challengers added.
    tried = Counter(judged_by_prompt or {}) if spread_questions else None
    tiers: dict[int, int] | None = None
    if fit and spread_questions and right_words is not None:
        order = sorted(fit)
        levels = kind_tiers([samples[i] for i in order], right_words, kin)
        tiers = dict(zip(order, levels.tolist(), strict=True))
    used: set[int] = set()
    out: list[list[EpisodeSample]] = []
    while len(out) < n:
        free = {g: [i for i in idx if i not in used] for g, idx in groups.items()}
        ready = [
            g for g, idx in free.items()
            if len({samples[i].response_key for i in idx}) >= k and eligible.intersection(idx)
        ]  # fmt: skip
        if not ready:
            break
        if fit:  # the challenger first, from the whole pool; its prompt gives the partners
            open_prompts = set(ready)
            picked = _least_explained(
                [i for i in eligible if i not in used and samples[i].prompt_key in open_prompts],
                samples, counts, fit, rng, tried, tiers,
            )  # fmt: skip
            members = free[samples[picked].prompt_key]
            keep = [picked]
        else:
            sizes = np.array([len(free[g]) for g in ready], dtype=float)
            members = free[ready[int(rng.choice(len(ready), p=sizes / sizes.sum()))]]
            keep = [i for i in members if i in eligible]
        if len(members) > scan:
            members = _scan(members, scan, rng, keep=keep)
        scores = np.asarray(score_fn([samples[i] for i in members]))
        bounds = scores.mean(axis=0) + scores.std(axis=0)
        spread = float(bounds.std())
        z = (bounds - bounds.mean()) / spread if spread > 0 else np.zeros_like(bounds)
        if fit:
            challenger = members.index(picked)
        else:
            seen = np.array(
                [counts.get(judgement_key(samples[i]), 0) for i in members], dtype=float
            )
            if challengers == "any":
                value = np.minimum(z, 0.0) + novelty / np.sqrt(1.0 + seen)
            else:  # the model does not choose among the floor's draws; ties go at random
                value = novelty / np.sqrt(1.0 + seen) + 1e-9 * rng.random(len(members))
            value[[i not in eligible for i in members]] = -np.inf
            challenger = int(np.argmax(value))
        chosen = [challenger]
        bets = z
        if partnered is not None:
            judged_here = [partnered[prompt_answer_key(samples[i])] for i in members]
            bets = z + partner_novelty / np.sqrt(1.0 + np.asarray(judged_here, dtype=float))
        for j in np.argsort(-bets, kind="stable"):
            if len(chosen) == k:
                break
            responses = {samples[members[c]].response_key for c in chosen}
            if samples[members[int(j)]].response_key not in responses:
                chosen.append(int(j))
        if len(chosen) < k:  # the scanned episodes hold too few different responses
            used.add(members[challenger])
            continue
        used.update(members[c] for c in chosen)
        if partnered is not None:
            partnered.update(prompt_answer_key(samples[members[c]]) for c in chosen[1:])
        key = judgement_key(samples[members[challenger]])
        counts[key] = counts.get(key, 0) + 1
        if tried is not None:
            tried[prompt_answer_key(samples[members[challenger]])] += 1
        if rotating and not open_answer(samples[members[challenger]]):
            eligible -= {i for i in eligible if judgement_key(samples[i]) == key}
        out.append([samples[members[c]] for c in chosen])
    return out


def _open(
    key: str, judged: Mapping[str, int], right: Mapping[str, int], limit: int, confirmations: int
) -> bool:
    # In the rotation: shown right too rarely, and (never shown right) judged under the limit.
    shown = right.get(key, 0)
    return shown < confirmations and (shown > 0 or judged.get(key, 0) < limit)


def rotation_give_up(
    keys: Collection[str],
    judged: Mapping[str, int],
    shown_right: Mapping[str, int],
    give_up: int,
    rounds: int,
    confirmations: int = 1,
    returning: Collection[str] | None = None,
) -> int:
    """The give-up of the rotation's current round: round j (from 1) keeps an answer never
    shown right until j * `give_up` labelled episodes gave it; the next round begins once
    none of `keys` (the answers of the pool's floor draws) is open in this one. After the
    first round only `returning` (default: all of `keys`) counts. After the last round,
    `rounds * give_up`."""
    for j in range(1, rounds + 1):
        pending = keys if j == 1 or returning is None else returning
        if any(_open(key, judged, shown_right, j * give_up, confirmations) for key in pending):
            return j * give_up
    return rounds * give_up


def _least_explained(
    candidates: list[int],
    samples: Sequence[EpisodeSample],
    counts: Mapping[str, int],
    fit: Mapping[int, float],
    rng: np.random.Generator,
    tried: Mapping[tuple[str, str], int] | None = None,
    tiers: Mapping[int, int] | None = None,
) -> int:
    """The candidate whose answer the labels have judged least and, among those, whose scene
    the known answers fit least (`fit`, lowest first; ties at random); with `tried` (labelled
    episodes per prompt and answer), the highest (1 - fit) / (1 + tried) instead, and with
    `tiers` (`kinds.kind_tiers`) the lowest tier first."""
    seen = np.array([counts.get(judgement_key(samples[i]), 0) for i in candidates], dtype=float)
    values = np.array([fit[i] for i in candidates])
    if tried is not None:
        times = np.array([tried.get(prompt_answer_key(samples[i]), 0) for i in candidates])
        values = -(1.0 - values) / (1.0 + times)  # in [-1, 0]
    if tiers is not None:
        values = values + 2.0 * np.array([tiers[i] for i in candidates])
    values = values + 1e-9 * rng.random(len(candidates))
    values[seen > seen.min()] = np.inf
    return candidates[int(np.argmin(values))]


def _scan(members: list[int], scan: int, rng: np.random.Generator, keep: list[int]) -> list[int]:
    """`scan` of `members`: all of `keep` that fit (when they are fewer than all), the rest at
    random."""
    if len(keep) in (0, len(members)):
        return [members[int(j)] for j in rng.choice(len(members), scan, replace=False)]
    kept = [keep[int(j)] for j in rng.choice(len(keep), min(scan, len(keep)), replace=False)]
    taken = set(kept)
    others = [i for i in members if i not in taken]
    fill = min(scan - len(kept), len(others))
    return kept + [others[int(j)] for j in rng.choice(len(others), fill, replace=False)]

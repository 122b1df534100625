"""Per-rater counts and inter-rater agreement, from the active labels of a store."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from mmrlhf.feedback.labelstore.model import QUERY_KINDS, StoredLabel
from mmrlhf.feedback.labelstore.rules import label_agreement


def mean_or_none(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    return float(sum(values) / len(values)) if values else None


def summarize(
    active: Sequence[StoredLabel],
    *,
    queries_per_kind: Mapping[str, int],
    items: int,
    retracted: int,
    cursor: int,
    budget: int | None,
) -> dict[str, Any]:
    """The JSON-ready stats dict of `LabelStore.stats` (see there for the keys).

    Agreement is computed on every query that two raters both labelled (skips excluded), with
    `rules.label_agreement`; a rater's agreement is the mean over all their comparisons.
    """
    total_q = sum(queries_per_kind.values())
    raters: dict[str, dict[str, Any]] = {}
    by_query: dict[int, list[StoredLabel]] = defaultdict(list)
    for lab in active:
        r = raters.setdefault(
            lab.rater_id,
            {"labels": 0, "skips": 0, "pending": total_q, "agreement": None, "compared": 0},
        )
        r["skips" if lab.kind == "skip" else "labels"] += 1
        r["pending"] -= 1
        by_query[lab.query_id].append(lab)

    pair_scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for labels in by_query.values():
        for a, b in combinations(sorted(labels, key=lambda x: x.rater_id), 2):
            score = label_agreement(a, b)
            if score is not None:
                pair_scores[(a.rater_id, b.rater_id)].append(score)
    rater_scores: dict[str, list[float]] = defaultdict(list)
    for (a, b), scores in pair_scores.items():
        rater_scores[a] += scores
        rater_scores[b] += scores
    for rid, scores in rater_scores.items():
        raters[rid]["agreement"] = mean_or_none(scores)
        raters[rid]["compared"] = len(scores)

    every = [s for scores in pair_scores.values() for s in scores]
    n_labels = sum(r["labels"] for r in raters.values())
    return {
        "items": items,
        "queries": {**{k: int(queries_per_kind.get(k, 0)) for k in QUERY_KINDS}, "total": total_q},
        "labels": n_labels,
        "skips": sum(r["skips"] for r in raters.values()),
        "retracted": retracted,
        "budget": budget,
        "budget_left": None if budget is None else max(0, budget - n_labels),
        "cursor": cursor,
        "raters": dict(sorted(raters.items())),
        "agreement": {
            "overall": mean_or_none(every),
            "comparisons": len(every),
            "pairs": [
                {"raters": [a, b], "shared": len(s), "agreement": mean_or_none(s)}
                for (a, b), s in sorted(pair_scores.items())
            ],
        },
    }

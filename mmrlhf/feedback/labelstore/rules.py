"""Label rules: which label kinds fit which query, valid values, and inter-rater agreement."""

from __future__ import annotations

from itertools import combinations
from typing import Any

from mmrlhf.feedback.labelstore.model import (
    COMPARE_CHOICES,
    LABEL_KINDS,
    MAX_RATER_ID_LEN,
    RATING_LEVELS,
    THUMBS,
    InvalidLabelError,
    StoredLabel,
    StoredQuery,
)


def validate_rater_id(rater_id: Any) -> str:
    """Return the stripped rater id, or raise `InvalidLabelError` saying what is allowed."""
    allowed = (
        f"1-{MAX_RATER_ID_LEN} characters: letters, digits, space, '_', '-', '.', '@' "
        "(starting with a letter or digit)"
    )
    if not isinstance(rater_id, str):
        raise InvalidLabelError(f"rater id must be a string of {allowed}; got {rater_id!r}")
    rid = rater_id.strip()
    ok = (
        0 < len(rid) <= MAX_RATER_ID_LEN
        and rid[0].isalnum()
        and all(c.isalnum() or c in " _-.@" for c in rid)
    )
    if not ok:
        raise InvalidLabelError(f"invalid rater id {rater_id!r}; allowed: {allowed}")
    return rid


def validate_label(query: StoredQuery, kind: Any, value: Any) -> tuple[str, Any]:
    """Check a label against its query; return the normalised (kind, value).

    Raises:
        InvalidLabelError: with a message naming what was wrong and what is allowed.
    """
    allowed_kinds = LABEL_KINDS[query.kind]
    if kind not in allowed_kinds:
        raise InvalidLabelError(
            f"label kind {kind!r} does not fit query {query.id} ({query.kind}); "
            f"allowed kinds: {', '.join(allowed_kinds)}"
        )
    if kind == "rating":
        # bool is an int in Python; a JSON true is not a star count.
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidLabelError(
                f"rating must be a whole number of stars from 1 to {RATING_LEVELS}; got {value!r}"
            )
        if not 1 <= value <= RATING_LEVELS:
            raise InvalidLabelError(
                f"rating {value} is out of range; allowed: 1 to {RATING_LEVELS} stars"
            )
        return kind, int(value)
    if kind == "thumbs":
        v = value.lower() if isinstance(value, str) else value
        if v not in THUMBS:
            raise InvalidLabelError(f'thumbs must be "up" or "down"; got {value!r}')
        return kind, v
    if kind == "compare":
        v = value.lower() if isinstance(value, str) else value
        if v not in COMPARE_CHOICES:
            raise InvalidLabelError(
                f'compare must be "a" (first better), "b" (second better), "tie", "both_bad" '
                f'or "both_good"; got {value!r}'
            )
        return kind, v
    if kind == "rank":
        ok = isinstance(value, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in value
        )
        if not ok or sorted(value) != sorted(query.item_ids):
            raise InvalidLabelError(
                f"rank must list the item ids of query {query.id} best first, each once "
                f"(a permutation of {query.item_ids}); got {value!r}"
            )
        return kind, list(value)
    # skip
    if value is not None:
        raise InvalidLabelError(f"skip takes no value (send null); got {value!r}")
    return kind, None


def label_agreement(a: StoredLabel, b: StoredLabel) -> float | None:
    """Agreement in [0, 1] between two raters' labels on the same query, or None if incomparable.

    Single items: 1 when the rewards differ by at most one star (thumbs: equal), else 0.
    Pairs: 1 when the choices are equal. Rankings: fraction of item pairs ordered the same way.
    Skips (and retracted labels) are not compared.
    """
    if a.retracted or b.retracted or "skip" in (a.kind, b.kind):
        return None
    if a.reward is not None and b.reward is not None:
        return float(abs(a.reward - b.reward) <= 1.0 / (RATING_LEVELS - 1) + 1e-9)
    if a.kind == b.kind == "compare":
        return float(a.value == b.value)
    if a.kind == b.kind == "rank":
        pos_a = {item: i for i, item in enumerate(a.value)}
        pos_b = {item: i for i, item in enumerate(b.value)}
        pairs = list(combinations(a.value, 2))
        same = sum((pos_a[x] < pos_a[y]) == (pos_b[x] < pos_b[y]) for x, y in pairs)
        return same / len(pairs) if pairs else None
    return None

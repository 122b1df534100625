"""Constants, errors and the plain records the label store hands out (no SQLite here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DEFAULT_FILENAME = "labels.sqlite"
RATING_LEVELS = 5
MAX_RANKING = 8
MAX_RATER_ID_LEN = 64

QueryKind = Literal["single", "pair", "ranking"]
LabelKind = Literal["rating", "thumbs", "compare", "rank", "skip"]
LabelStatus = Literal["created", "unchanged", "replaced"]

QUERY_KINDS: tuple[str, ...] = ("single", "pair", "ranking")
LABEL_KINDS: dict[str, tuple[str, ...]] = {
    "single": ("rating", "thumbs", "skip"),
    "pair": ("compare", "skip"),
    "ranking": ("rank", "skip"),
}
# A tie may say more: both answers bad, or both good (the reward model learns their quality).
COMPARE_CHOICES: tuple[str, ...] = ("a", "b", "tie", "both_bad", "both_good")
THUMBS: tuple[str, ...] = ("up", "down")


class LabelStoreError(Exception):
    """Base class of every error the store raises on bad input or state."""


class NotFoundError(LabelStoreError, LookupError):
    """An item id, query id or label that does not exist."""


class InvalidLabelError(LabelStoreError, ValueError):
    """A label or query that breaks the rules (wrong kind, value out of range, ...)."""


class LabelConflictError(LabelStoreError):
    """The rater already labelled this query with a different value (use `replace=True`)."""

    def __init__(self, message: str, existing: StoredLabel) -> None:
        super().__init__(message)
        self.existing = existing


class BudgetSpentError(LabelStoreError):
    """The label budget is used up; no new labels are accepted."""


def dialogue_turns(response: str) -> list[str]:
    """Split a dialogue response (`"q a | q a | guess cell"`) into its turns."""
    return [part.strip() for part in response.split("|") if part.strip()]


@dataclass(frozen=True)
class StoredItem:
    """One stored episode snapshot (no image bytes; see `LabelStore.image_png`)."""

    id: int
    episode_id: str
    env_runner_id: int
    task: str
    prompt: str
    response: str
    ground_truth: str
    score: float
    success: bool
    actions: list[int]
    step_scores: list[float]
    extras: dict[str, Any]
    image_format: str | None
    image_shape: list[int] | None
    meta: dict[str, Any]
    created_at: float

    @property
    def has_image(self) -> bool:
        """Whether an image was stored with the item."""
        return self.image_format is not None

    def public(self) -> dict[str, Any]:
        """What a rater may see: no ground truth, score, success, actions or extras."""
        return {
            "id": self.id,
            "task": self.task,
            "prompt": self.prompt,
            "response": self.response,
            "turns": dialogue_turns(self.response) if self.task == "dialogue" else [],
            "has_image": self.has_image,
            "image_shape": self.image_shape,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class StoredQuery:
    """Something raters are asked about: one item (`single`), two (`pair`) or k (`ranking`)."""

    id: int
    kind: str
    item_ids: list[int]
    meta: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class PendingQuery:
    """A query waiting for a rater, with its items (in the query's order)."""

    query: StoredQuery
    items: list[StoredItem]

    def public(self) -> dict[str, Any]:
        """JSON-ready view for the web page (items without ground truth)."""
        return {
            "query_id": self.query.id,
            "kind": self.query.kind,
            "item_ids": self.query.item_ids,
            "created_at": self.query.created_at,
            "items": [item.public() for item in self.items],
        }


@dataclass(frozen=True)
class StoredLabel:
    """One label row, with its query's kind and item ids (what a reward-model trainer needs).

    Attributes:
        id: Label row id (stable across replace / undo / relabel).
        query_id: The query it answers.
        rater_id: Who gave it.
        kind: `rating`, `thumbs`, `compare`, `rank` or `skip`.
        value: Normalised JSON value (see the module docstring).
        created_at: When the row was first written (epoch seconds).
        updated_at: When it last changed.
        rev: Store-wide revision of its last change; `labels_since` cursors are revisions.
        retracted: True once undone (a tombstone; consumers drop it).
        query_kind: `single`, `pair` or `ranking`.
        item_ids: The query's item ids, in order (A, B for pairs).
        episode_ids: The episode ids of those items, same order (what RLHF labels name).
    """

    id: int
    query_id: int
    rater_id: str
    kind: str
    value: Any
    created_at: float
    updated_at: float
    rev: int
    retracted: bool
    query_kind: str
    item_ids: list[int] = field(default_factory=list)
    episode_ids: list[str] = field(default_factory=list)

    @property
    def reward(self) -> float | None:
        """Reward in [0, 1] for `rating` / `thumbs` labels; None for other kinds."""
        if self.kind == "rating":
            return (int(self.value) - 1) / (RATING_LEVELS - 1)
        if self.kind == "thumbs":
            return 1.0 if self.value == "up" else 0.0
        return None

    @property
    def preference(self) -> float | None:
        """P(first item is better) for `compare` labels: 1 (a), 0 (b), 0.5 (tie, both bad,
        both good); else None."""
        if self.kind != "compare":
            return None
        return {"a": 1.0, "b": 0.0}.get(self.value, 0.5)

    @property
    def tie(self) -> str | None:
        """`both_bad` or `both_good` for a compare label that said so; else None."""
        marked = self.kind == "compare" and self.value in ("both_bad", "both_good")
        return self.value if marked else None

    @property
    def ranks(self) -> list[int] | None:
        """For `rank` labels: the place of each query item (in `item_ids` order), 0 = best."""
        if self.kind != "rank":
            return None
        return [self.value.index(item) for item in self.item_ids]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (adds `reward`, `preference` and `ranks`)."""
        return {
            **asdict(self),
            "reward": self.reward,
            "preference": self.preference,
            "ranks": self.ranks,
        }


@dataclass(frozen=True)
class LabelResult:
    """What `add_label` did: `created`, `unchanged` (same label sent again) or `replaced`."""

    label: StoredLabel
    status: LabelStatus

"""Request bodies of the labelling API (pydantic v2; unknown fields are rejected)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

QueryId = Annotated[int, Field(strict=True, ge=1, description="Query id (from /api/queue).")]


class LabelIn(BaseModel):
    """`POST /api/labels`: one rater's answer to one query.

    `value` is checked against the query by `labelstore.validate_label` (so the message can
    name the query's kind and what it allows): `rating` 1..5, `thumbs` "up"/"down",
    `compare` "a"/"b"/"tie", `rank` the item ids best first, `skip` null.
    """

    model_config = ConfigDict(extra="forbid")

    query_id: QueryId
    kind: str = Field(description="rating, thumbs, compare, rank or skip.")
    value: Any = Field(None, description="The label's value for that kind.")
    rater_id: str | None = Field(
        None, description="Who labels (else ?rater= or the X-Rater-Id header)."
    )
    replace: bool = Field(False, description="Overwrite this rater's different earlier label.")


class UndoIn(BaseModel):
    """`POST /api/undo`: retract this rater's most recent label (body optional)."""

    model_config = ConfigDict(extra="forbid")

    rater_id: str | None = Field(
        None, description="Who undoes (else ?rater= or the X-Rater-Id header)."
    )


LABEL_BODY_EXAMPLE = '{"query_id": 3, "kind": "rating", "value": 4, "rater_id": "ana"}'

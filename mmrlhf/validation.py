"""One readable message from a pydantic error: each bad key, what was wrong, what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the (sub)model that `loc` points into, for close-match suggestions."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def explain(err: ValidationError, model: type[BaseModel], where: str) -> str:
    """Format `err` (raised validating `model`) as `invalid <where> config:` plus one line per
    problem; unknown keys get close matches and the list of allowed keys."""
    lines = [f"invalid {where} config:"]
    for item in err.errors():
        loc = list(item["loc"])
        key = ".".join(str(p) for p in loc) or "(root)"
        if item["type"] == "extra_forbidden":
            fields = _fields_at(model, loc)
            close = difflib.get_close_matches(str(loc[-1]), fields, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            lines.append(f"  {key}: unknown key{hint} Allowed keys: {', '.join(fields)}")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {msg} (got {item.get('input')!r})")
    return "\n".join(lines)

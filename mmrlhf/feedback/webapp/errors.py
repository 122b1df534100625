"""Error responses: every 4xx is `{"error": code, "detail": one readable sentence, ...}`.

The detail names what was wrong and what is allowed. Store errors map to status codes here, in
one place: unknown ids 404, rule violations 422, conflicts and a spent budget 409, malformed
JSON 400, a missing or wrong token 401.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mmrlhf.feedback.labelstore import (
    BudgetSpentError,
    InvalidLabelError,
    LabelConflictError,
    LabelStoreError,
    NotFoundError,
)
from mmrlhf.feedback.webapp.schemas import LABEL_BODY_EXAMPLE, LabelIn, UndoIn

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with `status` and a JSON body."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.extra = extra


def _response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status, headers=headers)


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    where = loc[0] if loc else ""
    name = ".".join(parts) or "body"
    return f"{name} ({where})" if where in ("query", "path", "header") else name


def _allowed_fields(path: str) -> str:
    model = UndoIn if path.endswith("/undo") else LabelIn
    return ", ".join(model.model_fields)


def explain_validation(err: RequestValidationError, path: str) -> tuple[int, str, str]:
    """(status, error code, message) for a request that failed FastAPI validation."""
    errors = err.errors()
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "not valid JSON")
            return (
                400,
                "malformed_json",
                f"malformed JSON in the request body ({reason}); send a JSON object such as "
                f"{LABEL_BODY_EXAMPLE}",
            )
    parts = []
    for e in errors:
        loc = _loc(e.get("loc", ()))
        if e.get("type") == "extra_forbidden":
            parts.append(f"unknown field {loc!r}; allowed fields: {_allowed_fields(path)}")
        elif e.get("type") == "missing":
            parts.append(f"{loc} is required")
        elif e.get("type") in ("model_attributes_type", "dict_type", "model_type"):
            parts.append(
                f"the body must be a JSON object with fields {_allowed_fields(path)}; "
                f"got {type(e.get('input')).__name__}"
            )
        else:
            parts.append(f"{loc}: {e.get('msg', 'invalid')} (got {e.get('input')!r})")
    return 422, "validation", "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn store and validation errors into JSON 4xx answers."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _response(exc.status, exc.error, exc.detail, headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, detail = explain_validation(exc, request.url.path)
        return _response(status, code, detail)

    @app.exception_handler(LabelStoreError)
    async def _store_error(request: Request, exc: LabelStoreError) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            return _response(404, "not_found", str(exc))
        if isinstance(exc, InvalidLabelError):
            return _response(422, "invalid_label", str(exc))
        if isinstance(exc, LabelConflictError):
            return _response(409, "conflict", str(exc), existing=exc.existing.to_dict())
        if isinstance(exc, BudgetSpentError):
            return _response(409, "budget_spent", str(exc))
        logger.error("label store error on %s: %s", request.url.path, exc)
        return _response(500, "store_error", str(exc))

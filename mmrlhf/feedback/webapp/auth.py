"""Shared-token check and rater identification for the labelling API.

Token scope: when the app has a token, **every `/api/` route except `/api/health` and
`/api/config` needs it** (reads too: items show episodes of a private run, and stats show who
labelled what). The page shell (`/`, `/static/*`) is public: it holds no data and asks for the
token. The token may come as `Authorization: Bearer TOKEN`, an `X-Label-Token: TOKEN` header,
or `?token=TOKEN` (needed by `<img src>`, which cannot send headers).

Rater id: the body's `rater_id`, else `?rater=NAME`, else the `X-Rater-Id` header.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from mmrlhf.feedback.labelstore import validate_rater_id
from mmrlhf.feedback.webapp.errors import ApiError

RATER_HEADER = "X-Rater-Id"
TOKEN_HEADER = "X-Label-Token"


def request_token(request: Request) -> str | None:
    """The token the request carries (Bearer header, X-Label-Token header or ?token=)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get(TOKEN_HEADER) or request.query_params.get("token")


def check_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the app has no token or the request carries it."""
    expected: str | None = request.app.state.token
    if expected is None:
        return
    given = request_token(request)
    if not given:
        raise ApiError(
            401,
            "unauthorized",
            "this label server needs a token: send 'Authorization: Bearer TOKEN', an "
            f"'{TOKEN_HEADER}: TOKEN' header or ?token=TOKEN (the page asks for it)",
        )
    if not secrets.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "wrong token; ask whoever started the server")


def resolve_rater(request: Request, body_rater: str | None = None) -> str:
    """The request's rater id (body, then ?rater=, then header), validated; 422 when missing."""
    raw = body_rater or request.query_params.get("rater") or request.headers.get(RATER_HEADER)
    if not raw:
        raise ApiError(
            422,
            "validation",
            "rater id missing: send rater_id in the JSON body, ?rater=NAME or the "
            f"{RATER_HEADER} header",
        )
    return validate_rater_id(raw)

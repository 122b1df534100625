"""`create_app`: the labelling web app (FastAPI) over a `LabelStore`.

Routes (JSON unless noted; see `auth` for the token scope and how the rater is named):

=======  ===============================  =====================================================
GET      /                                the page (HTML; static, no data)
GET      /static/{file}                   its JS and CSS (shipped in the package, no CDN)
GET      /api/health                      `{"ok": true}` (no token)
GET      /api/config                      token_required, label kinds, rating levels (no token)
GET      /api/queue?rater=&limit=&kind=   the rater's pending queries with items, and progress
GET      /api/progress?rater=             labels given (all / this rater), budget left, queue
GET      /api/queries/{query_id}          one query with its items
GET      /api/items/{item_id}             one item (never ground truth, score or success)
GET      /api/items/{item_id}/image.png   the item's image (PNG)
POST     /api/labels                      add a label (201 created; 200 unchanged/replaced)
POST     /api/undo                        retract the rater's last label (404: nothing to undo)
GET      /api/labels?since=&limit=        label changes after a cursor (`labels_since`)
GET      /api/stats                       per-rater counts and inter-rater agreement
=======  ===============================  =====================================================

Route functions are plain `def`: FastAPI runs them in its thread pool and each thread has its
own SQLite connection, so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from mmrlhf.feedback.labelstore import (
    COMPARE_CHOICES,
    LABEL_KINDS,
    MAX_RANKING,
    QUERY_KINDS,
    RATING_LEVELS,
    THUMBS,
    LabelStore,
)
from mmrlhf.feedback.webapp.auth import check_token, resolve_rater
from mmrlhf.feedback.webapp.errors import ApiError, install_error_handlers
from mmrlhf.feedback.webapp.schemas import LabelIn, UndoIn

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MAX_QUEUE = 200
NO_STORE = {"Cache-Control": "no-store"}


def create_app(store: LabelStore | str | Path, token: str | None = None) -> FastAPI:
    """Build the labelling app.

    Args:
        store: An open `LabelStore`, or a path to open (closed again when the app shuts down).
        token: Shared token; when set, every data route needs it (see `webapp.auth`).
            Empty string = no token.

    Returns:
        The FastAPI app; `app.state.store` is the store.
    """
    owns_store = not isinstance(store, LabelStore)
    label_store = LabelStore(store) if owns_store else store  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_store:
            label_store.close()

    app = FastAPI(
        title="mmrlhf labels",
        summary="Label episodes for RLHF: rate, compare, rank.",
        lifespan=lifespan,
    )
    app.state.store = label_store
    app.state.token = token or None
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_page_routes(app)
    _add_api_routes(app, label_store)
    return app


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Liveness probe (no token needed)."""
        return {"ok": True}

    @app.get("/api/config")
    def config(request: Request) -> dict[str, Any]:
        """What the page needs before it can ask for anything (no token needed)."""
        return {
            "token_required": request.app.state.token is not None,
            "rating_levels": RATING_LEVELS,
            "query_kinds": list(QUERY_KINDS),
            "label_kinds": {k: list(v) for k, v in LABEL_KINDS.items()},
            "compare_choices": list(COMPARE_CHOICES),
            "thumbs": list(THUMBS),
            "max_ranking": MAX_RANKING,
        }


def _add_api_routes(app: FastAPI, store: LabelStore) -> None:
    guarded = [Depends(check_token)]

    @app.get("/api/queue", dependencies=guarded)
    def queue(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_QUEUE)] = 20,
        kind: Annotated[list[str] | None, Query()] = None,
        order: Literal["oldest", "newest"] = "oldest",
    ) -> JSONResponse:
        """The rater's pending queries (items without ground truth) and their progress."""
        rater = resolve_rater(request)
        pending = store.pending(rater, limit, kinds=kind, newest_first=order == "newest")
        return JSONResponse(
            {
                "rater_id": rater,
                "queries": [p.public() for p in pending],
                "progress": store.progress(rater),
            },
            headers=NO_STORE,
        )

    @app.get("/api/progress", dependencies=guarded)
    def progress(request: Request) -> dict[str, Any]:
        """Labels given (all raters, this rater), budget left, and this rater's queue length."""
        return store.progress(resolve_rater(request))

    @app.get("/api/queries/{query_id}", dependencies=guarded)
    def get_query(query_id: int) -> dict[str, Any]:
        """One query with its items."""
        return store.get_pending_query(query_id).public()

    @app.get("/api/items/{item_id}", dependencies=guarded)
    def get_item(item_id: int) -> dict[str, Any]:
        """One item as raters see it."""
        return store.get_item(item_id).public()

    @app.get("/api/items/{item_id}/image.png", dependencies=guarded)
    def get_image(item_id: int) -> Response:
        """The item's first image observation as PNG."""
        png = store.image_png(item_id)
        if png is None:
            raise ApiError(404, "not_found", f"item {item_id} has no displayable image")
        return Response(
            png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"}
        )

    @app.post("/api/labels", dependencies=guarded)
    def post_label(request: Request, body: Annotated[LabelIn, Body()]) -> JSONResponse:
        """Store a label (committed before the answer). Same label again: 200, unchanged;
        different label: 409 unless `replace` is true."""
        rater = resolve_rater(request, body.rater_id)
        result = store.add_label(body.query_id, rater, body.kind, body.value, replace=body.replace)
        logger.info(
            "label %s: query %d by %r: %s %s",
            result.status, body.query_id, rater, result.label.kind, result.label.value,
        )  # fmt: skip
        return JSONResponse(
            {
                "status": result.status,
                "label": result.label.to_dict(),
                "progress": store.progress(rater),
            },
            status_code=201 if result.status == "created" else 200,
        )

    @app.post("/api/undo", dependencies=guarded)
    def undo(request: Request, body: Annotated[UndoIn | None, Body()] = None) -> dict[str, Any]:
        """Retract the rater's most recent label; its query is pending for them again."""
        rater = resolve_rater(request, body.rater_id if body else None)
        undone = store.undo_last(rater)
        if undone is None:
            raise ApiError(404, "nothing_to_undo", f"rater {rater!r} has no label to undo")
        logger.info("undo: query %d by %r", undone.query_id, rater)
        return {
            "undone": undone.to_dict(),
            "query": store.get_pending_query(undone.query_id).public(),
            "progress": store.progress(rater),
        }

    @app.get("/api/labels", dependencies=guarded)
    def labels(
        since: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        """Label changes after cursor `since` (tombstones of undone labels included)."""
        rows, cursor = store.labels_since(since, limit)
        return {"labels": [r.to_dict() for r in rows], "cursor": cursor}

    @app.get("/api/stats", dependencies=guarded)
    def stats() -> dict[str, Any]:
        """Totals, per-rater counts and agreement between raters on shared queries."""
        return store.stats()

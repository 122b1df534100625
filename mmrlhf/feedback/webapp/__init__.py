"""The labelling web app: FastAPI routes over a `LabelStore` plus a plain HTML/JS/CSS page.

`create_app(store, token=None)` builds it; `mmrlhf.trainers.label_server.serve` runs it.
Every asset lives in `static/` inside the package, so the page works offline.
"""

from mmrlhf.feedback.webapp.app import STATIC_DIR, create_app

__all__ = ["STATIC_DIR", "create_app"]

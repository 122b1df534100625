"""The labelling API through FastAPI's TestClient: every route, every bad input, token, undo."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mmrlhf.feedback.labelstore import LabelStore
from mmrlhf.feedback.webapp import STATIC_DIR, create_app
from tests.webapp.conftest import RecordFactory, fill

TOKEN = "s3cret-token"


@pytest.fixture
def client(store: LabelStore, filled: dict[str, list[int]]) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c


@pytest.fixture
def token_client(store: LabelStore, filled: dict[str, list[int]]) -> Iterator[TestClient]:
    with TestClient(create_app(store, token=TOKEN)) as c:
        yield c


def label(client: TestClient, query_id: Any, kind: str, value: Any = None, **extra: Any) -> Any:
    body = {"query_id": query_id, "kind": kind, "value": value, "rater_id": "ana", **extra}
    return client.post("/api/labels", json=body)


def test_page_and_assets_are_local(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js"' in page.text
    for name in ("app.js", "app.css"):
        res = client.get(f"/static/{name}")
        assert res.status_code == 200 and len(res.text) > 1000
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        # Nothing fetched from the network: the only absolute URL is the SVG namespace.
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{path.name} refers to {urls}"
    assert "image-rendering: pixelated" in client.get("/static/app.css").text


def test_health_config(client: TestClient) -> None:
    assert client.get("/api/health").json() == {"ok": True}
    config = client.get("/api/config").json()
    assert config["token_required"] is False and config["rating_levels"] == 5
    assert config["label_kinds"]["pair"] == ["compare", "skip"]


def test_queue_hides_ground_truth(client: TestClient, filled: dict[str, list[int]]) -> None:
    res = client.get("/api/queue", params={"rater": "ana", "limit": 2})
    assert res.status_code == 200 and res.headers["cache-control"] == "no-store"
    data = res.json()
    assert data["rater_id"] == "ana"
    assert [q["query_id"] for q in data["queries"]] == filled["single"][:2]
    item = data["queries"][0]["items"][0]
    assert item["prompt"] and item["response"] == "answer 0"
    assert not {"ground_truth", "score", "success", "actions", "extras"} & set(item)
    assert data["progress"]["pending"] == 5 and data["progress"]["budget"] is None
    by_header = client.get("/api/queue", params={"kind": "ranking"}, headers={"X-Rater-Id": "bo"})
    assert [q["kind"] for q in by_header.json()["queries"]] == ["ranking"]
    newest = client.get("/api/queue", params={"rater": "ana", "order": "newest", "limit": 1})
    assert newest.json()["queries"][0]["query_id"] == filled["ranking"][0]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "rater id missing: send rater_id in the JSON body, ?rater=NAME"),
        ({"rater": "a/b"}, "invalid rater id 'a/b'; allowed: 1-64 characters"),
        ({"rater": "ana", "kind": "pairs"}, "unknown query kinds ['pairs']; allowed: single"),
        ({"rater": "ana", "limit": 0}, "limit (query): Input should be greater than or equal to 1"),
        ({"rater": "ana", "order": "random"}, "order (query): Input should be 'oldest' or"),
    ],
)
def test_queue_bad_input(client: TestClient, params: dict[str, Any], message: str) -> None:
    res = client.get("/api/queue", params=params)
    assert res.status_code == 422
    assert message in res.json()["detail"]


def test_items_queries_images(client: TestClient, store: LabelStore, record: RecordFactory) -> None:
    assert client.get("/api/items/1").json()["response"] == "answer 0"
    query = client.get("/api/queries/4").json()
    assert query["kind"] == "pair" and [i["id"] for i in query["items"]] == [1, 2]
    png = client.get("/api/items/1/image.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    no_image = store.add_episode(record("no-image", image=None))
    missing = client.get(f"/api/items/{no_image}/image.png")
    assert missing.status_code == 404 and "has no displayable image" in missing.json()["detail"]
    for path in ("/api/items/99", "/api/items/99/image.png", "/api/queries/99"):
        res = client.get(path)
        assert res.status_code == 404 and "unknown" in res.json()["detail"]
    bad = client.get("/api/items/abc")
    assert (
        bad.status_code == 422
        and "item_id (path): Input should be a valid integer" in (bad.json()["detail"])
    )


def test_label_idempotent_conflict_replace(client: TestClient, store: LabelStore) -> None:
    created = label(client, 1, "rating", 4)
    assert created.status_code == 201 and created.json()["status"] == "created"
    assert created.json()["label"]["reward"] == 0.75
    assert created.json()["progress"]["rater_labels"] == 1
    assert store.labels(query_id=1)[0].value == 4  # committed before the answer came back
    again = label(client, 1, "rating", 4)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["label"]["rev"] == created.json()["label"]["rev"]
    conflict = label(client, 1, "rating", 2)
    assert conflict.status_code == 409 and conflict.json()["error"] == "conflict"
    assert "send replace=true to change it" in conflict.json()["detail"]
    assert conflict.json()["existing"]["value"] == 4
    replaced = label(client, 1, "rating", 2, replace=True)
    assert replaced.status_code == 200 and replaced.json()["status"] == "replaced"
    assert [lab.value for lab in store.labels(query_id=1)] == [2]
    # Each label kind through the API.
    assert label(client, 2, "thumbs", "up").status_code == 201
    assert label(client, 3, "skip").status_code == 201
    tie = label(client, 4, "compare", "both_bad").json()["label"]
    assert (tie["value"], tie["preference"]) == ("both_bad", 0.5)
    assert label(client, 5, "rank", [5, 3, 4]).status_code == 201
    assert client.get("/api/queue", params={"rater": "ana"}).json()["queries"] == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"query_id": 1, "kind": "rating", "value": 9}, 422, "rating 9 is out of range; allowed"),
        ({"query_id": 1, "kind": "rating", "value": 0}, 422, "allowed: 1 to 5 stars"),
        ({"query_id": 1, "kind": "rating", "value": "4"}, 422, "whole number of stars from 1 to 5"),
        ({"query_id": 1, "kind": "rating", "value": "great"}, 422, "got 'great'"),
        ({"query_id": 1, "kind": "rating", "value": None}, 422, "got None"),
        ({"query_id": 1, "kind": "thumbs", "value": 1}, 422, 'thumbs must be "up" or "down"'),
        ({"query_id": 1, "kind": "compare", "value": "a"}, 422, "allowed kinds: rating, thumbs"),
        ({"query_id": 4, "kind": "rating", "value": 3}, 422, "(pair); allowed kinds: compare"),
        ({"query_id": 4, "kind": "compare", "value": "x"}, 422, '"a" (first better)'),
        ({"query_id": 5, "kind": "rank", "value": [3, 4]}, 422, "permutation of [3, 4, 5]"),
        ({"query_id": 1, "kind": "skip", "value": 2}, 422, "skip takes no value"),
        ({"query_id": 999, "kind": "rating", "value": 3}, 404, "unknown query id 999"),
        ({"query_id": 0, "kind": "rating", "value": 3}, 422, "query_id: Input should be greater"),
        ({"query_id": "one", "kind": "rating", "value": 3}, 422, "query_id: Input should be a"),
        ({"kind": "rating", "value": 3}, 422, "query_id is required"),
        ({"query_id": 1, "value": 3}, 422, "kind is required"),
        ({"query_id": 1, "kind": "rating", "value": 3, "stars": 3}, 422, "unknown field 'stars'"),
        ([1, "rating", 3], 422, "the body must be a JSON object with fields query_id, kind"),
    ],
)
def test_label_bad_input_changes_nothing(
    client: TestClient, store: LabelStore, body: Any, status: int, message: str
) -> None:
    if isinstance(body, dict):
        body = {**body, "rater_id": "ana"}
    res = client.post("/api/labels", json=body)
    assert res.status_code == status, res.json()
    assert message in res.json()["detail"]
    assert store.labels_since(0) == ([], 0)


def test_malformed_json_and_missing_rater(client: TestClient, store: LabelStore) -> None:
    res = client.post(
        "/api/labels",
        content=b'{"query_id": 1, "kind": ',
        headers={"content-type": "application/json"},
    )
    assert res.status_code == 400 and res.json()["error"] == "malformed_json"
    assert "malformed JSON in the request body" in res.json()["detail"]
    assert '{"query_id": 3, "kind": "rating"' in res.json()["detail"]  # shows what is allowed
    no_rater = client.post("/api/labels", json={"query_id": 1, "kind": "rating", "value": 3})
    assert no_rater.status_code == 422 and "rater id missing" in no_rater.json()["detail"]
    by_query = client.post(
        "/api/labels?rater=bob", json={"query_id": 1, "kind": "rating", "value": 3}
    )
    assert by_query.status_code == 201 and by_query.json()["label"]["rater_id"] == "bob"
    assert len(store.labels_since(0)[0]) == 1


def test_budget_spent(client: TestClient, store: LabelStore) -> None:
    store.set_budget(1)
    assert label(client, 1, "rating", 3).status_code == 201
    res = label(client, 2, "rating", 3)
    assert res.status_code == 409 and res.json()["error"] == "budget_spent"
    assert "budget of 1 is spent" in res.json()["detail"]
    assert label(client, 2, "skip").status_code == 201
    progress = client.get("/api/progress", params={"rater": "ana"}).json()
    assert progress["budget"] == 1 and progress["budget_left"] == 0


def test_undo(client: TestClient, store: LabelStore) -> None:
    label(client, 1, "rating", 3)
    label(client, 4, "compare", "b")
    res = client.post("/api/undo", json={"rater_id": "ana"})
    assert res.status_code == 200
    data = res.json()
    assert data["undone"]["query_id"] == 4 and data["undone"]["retracted"] is True
    assert data["query"]["query_id"] == 4 and len(data["query"]["items"]) == 2
    assert data["progress"]["rater_labels"] == 1
    queue = client.get("/api/queue", params={"rater": "ana"}).json()["queries"]
    assert 4 in [q["query_id"] for q in queue]
    by_header = client.post("/api/undo", headers={"X-Rater-Id": "ana"})  # no body at all
    assert by_header.status_code == 200 and by_header.json()["undone"]["query_id"] == 1
    nothing = client.post("/api/undo", json={"rater_id": "ana"})
    assert nothing.status_code == 404 and "has no label to undo" in nothing.json()["detail"]
    bad = client.post("/api/undo", json={"rater": "ana"})
    assert (
        bad.status_code == 422
        and "unknown field 'rater'; allowed fields: rater_id" in (bad.json()["detail"])
    )
    assert store.labels() == []


def test_labels_since_and_stats(client: TestClient) -> None:
    label(client, 1, "rating", 5)
    client.post("/api/labels?rater=bob", json={"query_id": 1, "kind": "rating", "value": 4})
    label(client, 2, "thumbs", "down")
    first = client.get("/api/labels", params={"since": 0, "limit": 2}).json()
    assert [lab["rater_id"] for lab in first["labels"]] == ["ana", "bob"]
    rest = client.get("/api/labels", params={"since": first["cursor"]}).json()
    assert [lab["value"] for lab in rest["labels"]] == ["down"]
    assert client.get("/api/labels", params={"since": rest["cursor"]}).json()["labels"] == []
    assert client.get("/api/labels", params={"since": -1}).status_code == 422
    stats = client.get("/api/stats").json()
    assert stats["raters"]["ana"]["labels"] == 2 and stats["raters"]["bob"]["agreement"] == 1.0
    assert stats["agreement"]["overall"] == 1.0 and stats["agreement"]["comparisons"] == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/queue?rater=ana"),
        ("GET", "/api/progress?rater=ana"),
        ("GET", "/api/queries/1"),
        ("GET", "/api/items/1"),
        ("GET", "/api/items/1/image.png"),
        ("POST", "/api/labels"),
        ("POST", "/api/undo?rater=ana"),
        ("GET", "/api/labels"),
        ("GET", "/api/stats"),
    ],
)
def test_token_required(token_client: TestClient, method: str, path: str) -> None:
    body = {"query_id": 1, "kind": "rating", "value": 3, "rater_id": "ana"}
    kwargs: dict[str, Any] = {"json": body} if path == "/api/labels" else {}
    res = token_client.request(method, path, **kwargs)
    assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
    assert "needs a token" in res.json()["detail"]
    wrong = token_client.request(method, path, headers={"Authorization": "Bearer nope"}, **kwargs)
    assert wrong.status_code == 401 and "wrong token" in wrong.json()["detail"]
    ok = token_client.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
    assert ok.status_code in (200, 201, 404), ok.json()  # 404: nothing to undo


def test_token_ways_and_open_routes(token_client: TestClient, store: LabelStore) -> None:
    body = {"query_id": 1, "kind": "rating", "value": 3, "rater_id": "ana"}
    assert token_client.post("/api/labels", json=body).status_code == 401
    assert store.labels() == []  # a refused label is not stored
    assert token_client.post("/api/labels", json=body, headers={"X-Label-Token": TOKEN}).is_success
    assert token_client.get(f"/api/items/1/image.png?token={TOKEN}").status_code == 200
    assert token_client.get("/").status_code == 200
    assert token_client.get("/static/app.js").status_code == 200
    assert token_client.get("/api/health").status_code == 200
    assert token_client.get("/api/config").json()["token_required"] is True


def test_app_restart_keeps_labels_and_queue(store_path: Path) -> None:
    seed = LabelStore(store_path)
    fill(seed)
    seed.close()
    with TestClient(create_app(store_path)) as c:  # the app opens (and closes) the store
        assert label(c, 1, "rating", 4).status_code == 201
        assert label(c, 4, "compare", "a").status_code == 201
        assert label(c, 2, "thumbs", "up").status_code == 201
        assert c.post("/api/undo", json={"rater_id": "ana"}).status_code == 200
        labels_before = c.get("/api/labels").json()
        queue_before = c.get("/api/queue", params={"rater": "ana"}).json()["queries"]
    with TestClient(create_app(store_path)) as c:
        assert c.get("/api/labels").json() == labels_before
        queue = c.get("/api/queue", params={"rater": "ana"}).json()["queries"]
        assert queue == queue_before and [q["query_id"] for q in queue] == [2, 3, 5]

"""The labelling page in a real browser (Playwright driving Debian's Chromium).

Skipped when Playwright or the browser is missing (`scripts/ensure_chromium.sh` installs it).
Set MMRLHF_CHROMIUM to use another Chromium binary, and MMRLHF_UPDATE_SCREENSHOTS=1 to rewrite
docs/screenshots/label_app.png.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmrlhf.feedback.labelstore import LabelStore, StoredLabel
from mmrlhf.feedback.webapp import create_app
from mmrlhf.trainers.label_server import add_demo_items
from tests.webapp.conftest import ThreadServer

CHROMIUM = os.environ.get("MMRLHF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "label_app.png"
TOKEN = "browser-token"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (run scripts/ensure_chromium.sh as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.set_default_timeout(10_000)
    yield p
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def demo_store(path: Path, episodes_per_task: int) -> LabelStore:
    """A store with real env episodes (vqa, caption, dialogue) and all three query kinds."""
    store = LabelStore(path)
    add_demo_items(store, episodes_per_task=episodes_per_task)
    return store


def latest(labels: list[StoredLabel]) -> dict[int, tuple[str, Any]]:
    """What a reward-model trainer keeps from `labels_since`: latest per query, no tombstones."""
    by_query: dict[int, StoredLabel] = {}
    for lab in labels:
        by_query[lab.query_id] = lab
    return {q: (lab.kind, lab.value) for q, lab in by_query.items() if not lab.retracted}


def wait_for_query(page: Any, query_id: int) -> None:
    page.wait_for_selector(f'#cards[data-query-id="{query_id}"]')
    page.wait_for_selector("body[data-state=ready]")


def test_label_with_clicks_and_keys(page: Any, tmp_path: Path) -> None:
    store = demo_store(tmp_path / "labels.sqlite", episodes_per_task=2)
    # Queries: per task 2 singles, 1 pair, 1 ranking of 3 -> vqa 1-4, caption 5-8, dialogue 9-12.
    items = {q: store.get_query(q).item_ids for q in (4, 8)}
    with ThreadServer(create_app(store)) as server:
        page.goto(f"{server.url}/?rater=ana")
        wait_for_query(page, 1)
        assert page.locator("#cards .episode-image").evaluate("i => i.naturalWidth") == 64
        assert (
            page.locator("#cards .episode-image").evaluate(
                "i => getComputedStyle(i).imageRendering"
            )
            == "pixelated"
        )
        assert page.locator("#queue li").count() == 12

        page.click('button[data-stars="4"]')  # click: 4 stars
        wait_for_query(page, 2)
        page.keyboard.press("y")  # key: thumbs up
        wait_for_query(page, 3)
        page.keyboard.press("b")  # pair: B better
        wait_for_query(page, 4)
        first, second, third = items[4]
        page.click(f'#cards .item[data-item-id="{second}"]')  # ranking by clicks + Enter
        page.click(f'#cards .item[data-item-id="{first}"]')  # the last place fills itself
        assert page.locator("#cards .item.ranked").count() == 3
        page.keyboard.press("Enter")
        wait_for_query(page, 5)
        assert latest(store.labels_since(0)[0])[4] == ("rank", [second, first, third])

        page.keyboard.press("u")  # undo the ranking: it comes back
        wait_for_query(page, 4)
        assert 4 not in latest(store.labels_since(0)[0])
        page.keyboard.press("3")
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        wait_for_query(page, 5)
        page.click('button[data-thumbs="down"]')  # click: thumbs down
        wait_for_query(page, 6)
        page.keyboard.press("s")  # skip
        wait_for_query(page, 7)
        page.click('button[data-choice="a"]')  # click: A better
        wait_for_query(page, 8)
        page.keyboard.press("t")  # not a ranking key: nothing happens
        page.keyboard.press("Backspace")
        page.keyboard.press("2")
        page.keyboard.press("Enter")  # incomplete ranking: refused on the page
        assert page.locator("#toast.error").is_visible()
        page.keyboard.press("1")  # with 2 already picked, this completes the ranking
        page.click("#rank-submit")
        wait_for_query(page, 9)

        progress = page.locator("#progress").inner_text()
        assert "Labels given: 7 (you: 7, skipped 1)" in progress and "Queue: 4 pending" in progress
        page.fill("#rater", "")
        page.locator("#rater").press_sequentially("sue")  # s, u: no skip, no undo while typing
        page.keyboard.press("Enter")
        wait_for_query(page, 1)
        page.wait_for_selector('#raters tr[data-rater="ana"]')

    labels, cursor = store.labels_since(0)
    assert cursor > 0
    third_item = items[4][2]
    assert latest(labels) == {
        1: ("rating", 4),
        2: ("thumbs", "up"),
        3: ("compare", "b"),
        4: ("rank", [third_item, first, second]),
        5: ("thumbs", "down"),
        6: ("skip", None),
        7: ("compare", "a"),
        8: ("rank", [items[8][1], items[8][0], items[8][2]]),
    }
    assert {lab.rater_id for lab in labels} == {"ana"}
    assert [lab.retracted for lab in labels if lab.query_id == 4] == [False]  # relabelled
    store.close()


def test_token_page(page: Any, tmp_path: Path) -> None:
    store = demo_store(tmp_path / "labels.sqlite", episodes_per_task=1)
    with ThreadServer(create_app(store, token=TOKEN)) as server:
        page.goto(f"{server.url}/?rater=ana")
        page.wait_for_selector("#toast.error")  # 401 explained on the page
        assert page.locator("#token-field").is_visible()
        page.fill("#token", TOKEN)
        page.locator("#token").blur()  # fires the change event
        wait_for_query(page, 1)
        assert page.locator("#cards .episode-image").evaluate("i => i.naturalWidth") == 64
        page.keyboard.press("5")
        wait_for_query(page, 2)
    assert latest(store.labels_since(0)[0]) == {1: ("rating", 5)}
    store.close()


def test_screenshot(page: Any, tmp_path: Path) -> None:
    store = demo_store(tmp_path / "labels.sqlite", episodes_per_task=4)
    store.set_budget(200)
    for rater, shift in (("ben", 0), ("cleo", 1)):
        for pending in store.pending(rater, 6, kinds=["single"]):
            q = pending.query.id
            store.add_label(q, rater, "rating", 1 + (q + shift * (q % 2)) % 5)
    page.set_viewport_size({"width": 1400, "height": 780})
    with ThreadServer(create_app(store)) as server:
        page.goto(f"{server.url}/?rater=ana")
        wait_for_query(page, 1)
        for key in ("4", "2", "5", "1"):  # ana rates the four vqa answers
            page.keyboard.press(key)
            page.wait_for_selector("body[data-state=ready]")
        pair = next(p.query.id for p in store.pending("ana", 100, kinds=["pair"])
                    if p.items[0].task == "dialogue")  # fmt: skip
        page.click(f'#queue li[data-query-id="{pair}"]')
        wait_for_query(page, pair)
        page.wait_for_selector('#raters tr[data-rater="ana"]')
        page.wait_for_function(
            "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        )
        page.wait_for_timeout(200)
        out = tmp_path / "label_app.png"
        page.screenshot(path=str(out))
    assert out.stat().st_size > 20_000
    if os.environ.get("MMRLHF_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, SCREENSHOT)
    store.close()

"""The labelling page in a real browser (Playwright driving Debian's Chromium).

Skipped when Playwright or the browser is missing (`scripts/ensure_chromium.sh` installs it).
Set MMRLHF_CHROMIUM to use another Chromium binary, and MMRLHF_UPDATE_SCREENSHOTS=1 to rewrite
docs/screenshots/label_app.png.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mmrlhf.config import ExperimentConfig
from mmrlhf.feedback.labelstore import LabelStore, StoredLabel
from mmrlhf.feedback.preferences import BinaryLabel, RatingLabel
from mmrlhf.feedback.webapp import create_app
from mmrlhf.trainers.label_server import add_demo_items
from mmrlhf.trainers.train import train
from tests.conftest import HUMAN_RLHF
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


def loaded_image_width(page: Any) -> int:
    """The natural width of the card's image once the browser has decoded it.

    `data-state=ready` means the page takes input; the image may still be in flight then.
    """
    return int(
        page.locator("#cards .episode-image").evaluate(
            "async i => { if (!(i.complete && i.naturalWidth)) await i.decode();"
            " return i.naturalWidth; }"
        )
    )


def test_label_with_clicks_and_keys(page: Any, tmp_path: Path) -> None:
    store = demo_store(tmp_path / "labels.sqlite", episodes_per_task=2)
    # Queries: per task 2 singles, 1 pair, 1 ranking of 3 -> vqa 1-4, caption 5-8, dialogue 9-12.
    items = {q: store.get_query(q).item_ids for q in (4, 8)}
    with ThreadServer(create_app(store)) as server:
        page.goto(f"{server.url}/?rater=ana")
        wait_for_query(page, 1)
        assert loaded_image_width(page) == 64
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
        page.keyboard.press("x")  # pair: both bad
        wait_for_query(page, 8)
        assert latest(store.labels_since(0)[0])[7] == ("compare", "both_bad")
        page.keyboard.press("u")
        wait_for_query(page, 7)
        assert page.locator('button[data-choice="both_good"]').is_visible()
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
        assert loaded_image_width(page) == 64
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


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.ray
def test_browser_labels_reach_the_reward_model_of_a_running_ppo_run(
    ray_session: None, page: Any, tiny_cfg: ExperimentConfig, tmp_path: Path
) -> None:
    """`train` serves the page; a person labels in the browser while PPO runs; the labels land
    in the store, then in the reward model's training set, which publishes a new version."""
    import ray

    cfg = tiny_cfg.with_overrides(
        {
            **HUMAN_RLHF,
            "feedback.human_enqueue_per_iter": 4,
            "feedback.rm_send_fraction": 1.0,
            "feedback.rm_send_block": 8,
            "feedback.rm_min_steps": 2,
            "feedback.rm_max_steps": 4,
            "feedback.rm_ensemble": 2,
            "feedback.rm_embed_dim": 8,
            "feedback.rm_hidden": 16,
            "feedback.rm_save_dir": str(tmp_path / "rm"),
            "stop.iterations": 4,
        }
    )
    store_path = Path(cfg.feedback.human_store or "")
    hub_name = cfg.feedback.rm_hub_actor_name(None)
    seen: dict[str, Any] = {}

    def person(line: str) -> None:
        """Runs in the training loop after each iteration, as a person at the page would."""
        if line.startswith("labelling page: "):
            seen["url"] = line.split()[2]
        elif line.startswith("iter ") and "labelled" not in seen:
            with LabelStore(store_path) as store:
                if not store.pending("ana", 3):
                    return  # the hub has not queued episodes yet; try after the next iteration
            seen["version_before"] = ray.get(ray.get_actor(hub_name).stats.remote())["rm_version"]
            page.goto(f"{seen['url']}?rater=ana")
            page.wait_for_selector("#cards[data-query-id]")
            page.wait_for_selector("body[data-state=ready]")
            for key in ("5", "1", "n"):  # 5 stars, 1 star, thumbs down
                query = page.locator("#cards").get_attribute("data-query-id")
                page.keyboard.press(key)
                page.wait_for_selector(f'#cards:not([data-query-id="{query}"])')
                page.wait_for_selector("body[data-state=ready]")
            seen["labelled"] = True
        elif "labelled" in seen and "hub" not in seen:
            hub = ray.get_actor(hub_name)

            def trained_on_them() -> bool:
                stats = ray.get(hub.stats.remote())
                return stats["human"] >= 3 and stats["rm_version"] > seen["version_before"]

            wait_until(trained_on_them, 60, "a reward model trained on the 3 labels")
            seen["hub"] = ray.get(hub.training_labels.remote())

    train(cfg, debug=True, progress=person)

    assert "labelled" in seen and "hub" in seen, f"the person never got to label: {seen}"
    with LabelStore(store_path) as store:
        rows = store.labels_since(0)[0]
    assert sorted(((r.kind, r.value) for r in rows), key=str) == [
        ("rating", 1), ("rating", 5), ("thumbs", "down")
    ]  # fmt: skip
    assert {r.rater_id for r in rows} == {"ana"} and not any(r.retracted for r in rows)
    by_value = {r.value: r.episode_ids[0] for r in rows}
    # The reward model trains on exactly what the person gave, on the episodes they saw.
    assert sorted(seen["hub"], key=str) == sorted(
        [
            RatingLabel(by_value[5], 1.0, source="human:ana"),
            RatingLabel(by_value[1], 0.0, source="human:ana"),
            BinaryLabel(by_value["down"], False, source="human:ana"),
        ],
        key=str,
    )

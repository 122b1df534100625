// mmrlhf labelling page: plain JS, no dependencies, talks to /api (see webapp/app.py).
"use strict";

const POLL_MS = 5000;
const STATS_MS = 10000;
const QUEUE_LIMIT = 30;
const PROMPT_LABEL = { vqa: "Question", caption: "Prompt", dialogue: "Goal", retrieval: "Query" };
const RESPONSE_LABEL = { vqa: "Answer", caption: "Caption", dialogue: "Dialogue", retrieval: "Choice" };

const state = {
  config: null,
  rater: "",
  token: "",
  kind: "",
  queue: [],
  current: null,
  pinned: null, // a query brought back by undo: shown first until labelled
  rank: {}, // query_id -> item ids picked so far, best first
  progress: null,
  busy: false,
  signature: "",
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// --- API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (state.rater) headers["X-Rater-Id"] = state.rater;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try {
    data = await res.json();
  } catch (_) {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function imageUrl(itemId) {
  const q = state.token ? `?token=${encodeURIComponent(state.token)}` : "";
  return `/api/items/${itemId}/image.png${q}`;
}

// --- state changes ---------------------------------------------------------------------------

function setBusy(busy) {
  state.busy = busy;
  document.body.dataset.state = busy ? "busy" : pageState();
}

function pageState() {
  if (!state.rater) return "no-rater";
  return state.current ? "ready" : "empty";
}

async function refresh() {
  if (!state.rater) {
    state.queue = [];
    state.current = null;
    render();
    return;
  }
  const params = new URLSearchParams({ rater: state.rater, limit: String(QUEUE_LIMIT) });
  if (state.kind) params.append("kind", state.kind);
  try {
    const data = await api(`/api/queue?${params}`);
    let queue = data.queries;
    if (state.pinned) {
      queue = [state.pinned, ...queue.filter((q) => q.query_id !== state.pinned.query_id)];
    }
    const keep = state.current && queue.find((q) => q.query_id === state.current.query_id);
    const current = keep || queue[0] || null;
    // Polling finds nothing new most of the time: then leave the page alone.
    const signature = JSON.stringify([
      queue.map((q) => q.query_id),
      data.progress,
      current && current.query_id,
    ]);
    const unchanged = signature === state.signature;
    state.signature = signature;
    state.queue = queue;
    state.progress = data.progress;
    state.current = current;
    if (unchanged) return;
  } catch (err) {
    handleError(err);
  }
  render();
}

async function submit(kind, value) {
  const query = state.current;
  if (state.busy || !query) return;
  setBusy(true);
  try {
    const res = await api("/api/labels", {
      method: "POST",
      body: { query_id: query.query_id, kind, value, rater_id: state.rater },
    });
    const again = res.status === "unchanged" ? " (already saved)" : "";
    toast(`Saved ${describe(kind, value, query)} for query #${query.query_id}${again}`);
    forget(query);
  } catch (err) {
    if (err.status === 409 && err.body && err.body.error === "conflict") forget(query);
    handleError(err);
  }
  await refresh();
  setBusy(false);
  loadStats();
}

function forget(query) {
  delete state.rank[query.query_id];
  if (state.pinned && state.pinned.query_id === query.query_id) state.pinned = null;
  state.queue = state.queue.filter((q) => q.query_id !== query.query_id);
  state.current = null;
}

async function undo() {
  if (state.busy || !state.rater) return;
  setBusy(true);
  try {
    const res = await api("/api/undo", { method: "POST", body: { rater_id: state.rater } });
    state.pinned = res.query;
    state.current = res.query;
    delete state.rank[res.query.query_id];
    toast(`Undid ${describe(res.undone.kind, res.undone.value, res.query)} on query #${res.query.query_id}`);
  } catch (err) {
    handleError(err);
  }
  await refresh();
  setBusy(false);
  loadStats();
}

function handleError(err) {
  if (err instanceof ApiError && err.status === 401) {
    $("#token-field").hidden = false;
    $("#token").focus();
  }
  toast(err.message || String(err), true);
}

// --- ranking ---------------------------------------------------------------------------------

function rankPick(itemId) {
  const q = state.current;
  if (!q || q.kind !== "ranking") return;
  const order = state.rank[q.query_id] || [];
  if (order.includes(itemId)) {
    state.rank[q.query_id] = order.filter((i) => i !== itemId);
  } else {
    order.push(itemId);
    const rest = q.item_ids.filter((i) => !order.includes(i));
    if (rest.length === 1) order.push(rest[0]); // the last place is decided
    state.rank[q.query_id] = order;
  }
  render();
}

function rankBack() {
  const q = state.current;
  if (!q) return;
  const order = state.rank[q.query_id] || [];
  order.splice(Math.max(0, order.length - (order.length === q.item_ids.length ? 2 : 1)));
  state.rank[q.query_id] = order;
  render();
}

function rankSubmit() {
  const q = state.current;
  const order = (q && state.rank[q.query_id]) || [];
  if (!q || order.length !== q.item_ids.length) {
    toast(`Pick all ${q ? q.item_ids.length : ""} episodes, best first, then submit`, true);
    return;
  }
  submit("rank", order);
}

// --- rendering -------------------------------------------------------------------------------

function describe(kind, value, query) {
  if (kind === "rating") return `${"★".repeat(value)}${"☆".repeat(levels() - value)} (${value}/${levels()})`;
  if (kind === "thumbs") return value === "up" ? "thumbs up" : "thumbs down";
  if (kind === "compare") {
    const ties = { tie: "a tie", both_bad: "a tie: both bad", both_good: "a tie: both good" };
    return ties[value] || `${value.toUpperCase()} better`;
  }
  if (kind === "rank") {
    const letter = (id) => letterOf(query.item_ids.indexOf(id));
    return `ranking ${value.map(letter).join(" > ")}`;
  }
  return "skip";
}

function levels() {
  return (state.config && state.config.rating_levels) || 5;
}

function letterOf(index) {
  return String.fromCharCode(65 + index);
}

function ago(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function render() {
  renderProgress();
  renderCurrent();
  renderQueue();
  if (!state.busy) document.body.dataset.state = pageState();
}

function renderProgress() {
  const p = state.progress;
  const node = $("#progress");
  if (!state.rater) {
    node.textContent = "Enter your rater name to start.";
    return;
  }
  if (!p) return;
  const budget =
    p.budget === null ? "Budget: unlimited" : `Budget left: ${p.budget_left} of ${p.budget}`;
  node.textContent =
    `Labels given: ${p.labels} (you: ${p.rater_labels}, skipped ${p.rater_skips})` +
    ` · ${budget} · Queue: ${p.pending} pending`;
}

function renderTranscript(item) {
  const list = el("ol", { class: "transcript" });
  for (const turn of item.turns) {
    if (turn.startsWith("guess ")) {
      list.append(el("li", { class: "guess" }, el("b", { text: "Guess" }), ` ${turn.slice(6)}`));
      continue;
    }
    const words = turn.split(" ");
    const answer = words.length > 1 ? words.pop() : "";
    list.append(
      el(
        "li",
        {},
        el("span", { class: "q", text: words.join(" ") }),
        answer ? el("span", { class: `a a-${answer}`, text: answer }) : null,
      ),
    );
  }
  if (!item.turns.length) list.append(el("li", { class: "muted", text: "(no turns)" }));
  return list;
}

function renderItem(item, index, query) {
  const ranking = query.kind === "ranking";
  const order = state.rank[query.query_id] || [];
  const place = order.indexOf(item.id);
  const card = el("article", {
    class: `item${place >= 0 ? " ranked" : ""}`,
    dataset: { itemId: String(item.id) },
    onclick: ranking ? () => rankPick(item.id) : null,
    title: ranking ? `Click (or press ${index + 1}) to place this episode next` : null,
  });
  if (query.kind !== "single") {
    card.append(el("div", { class: "letter", text: letterOf(index) }));
  }
  if (ranking && place >= 0) card.append(el("div", { class: "place", text: `#${place + 1}` }));
  if (item.has_image) {
    card.append(
      el("img", {
        class: "episode-image",
        src: imageUrl(item.id),
        alt: `Episode image of item ${item.id}`,
        draggable: "false",
      }),
    );
  } else {
    card.append(el("div", { class: "episode-image no-image", text: "no image" }));
  }
  const responseBody =
    item.task === "dialogue"
      ? renderTranscript(item)
      : el("span", { class: "response", text: item.response || "(empty)" });
  card.append(
    el(
      "div",
      { class: "text" },
      el(
        "div",
        { class: "meta" },
        el("span", { class: "task", text: item.task || "episode" }),
        el("span", { class: "muted", text: `item ${item.id} · ${ago(item.created_at)}` }),
      ),
      el(
        "div",
        { class: "field" },
        el("span", { class: "k", text: PROMPT_LABEL[item.task] || "Prompt" }),
        el("span", { class: "prompt", text: item.prompt || "(empty)" }),
      ),
      el(
        "div",
        { class: "field" },
        el("span", { class: "k", text: RESPONSE_LABEL[item.task] || "Response" }),
        responseBody,
      ),
    ),
  );
  return card;
}

function button(label, hint, onclick, attrs = {}) {
  return el(
    "button",
    { type: "button", onclick, ...attrs },
    el("span", { class: "label", text: label }),
    hint ? el("kbd", { text: hint }) : null,
  );
}

function thumbIcon(down) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `thumb${down ? " down" : ""}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute(
    "d",
    "M2 21h4V9H2v12zm20-11c0-1.1-.9-2-2-2h-6.3l1-4.6v-.3c0-.4-.2-.8-.4-1.1L13.2 1 6.6 7.6" +
      "C6.2 7.9 6 8.4 6 9v10c0 1.1.9 2 2 2h9c.8 0 1.5-.5 1.8-1.2l3-7.1c.1-.2.2-.5.2-.7v-2z",
  );
  svg.append(path);
  return svg;
}

function renderActions(query) {
  const box = $("#actions");
  const keys = $("#keys");
  box.replaceChildren();
  if (!query) {
    keys.textContent = state.rater ? "u undo your last label" : "";
    if (state.rater) box.append(button("Undo", "u", undo, { class: "undo", id: "undo" }));
    return;
  }
  if (query.kind === "single") {
    const stars = el("div", { class: "stars", role: "group", "aria-label": "Rating" });
    for (let s = levels(); s >= 1; s--) {
      stars.append(
        el(
          "button",
          {
            type: "button",
            class: "star",
            dataset: { stars: String(s) },
            title: `${s} star${s > 1 ? "s" : ""} (key ${s})`,
            "aria-label": `${s} stars`,
            onclick: () => submit("rating", s),
          },
          el("span", { class: "glyph", text: "★" }),
          el("kbd", { text: String(s) }),
        ),
      );
    }
    const up = button("Good", "y", () => submit("thumbs", "up"), { class: "up", dataset: { thumbs: "up" } });
    up.prepend(thumbIcon(false));
    const down = button("Bad", "n", () => submit("thumbs", "down"), { class: "down", dataset: { thumbs: "down" } });
    down.prepend(thumbIcon(true));
    box.append(stars, el("div", { class: "thumbs" }, up, down));
    keys.textContent = `1–${levels()} stars · y / n thumbs up / down · s skip · u undo`;
  } else if (query.kind === "pair") {
    box.append(
      button("A is better", "a", () => submit("compare", "a"), { dataset: { choice: "a" } }),
      button("Tie", "t", () => submit("compare", "tie"), { dataset: { choice: "tie" } }),
      button("B is better", "b", () => submit("compare", "b"), { dataset: { choice: "b" } }),
      button("Both bad", "x", () => submit("compare", "both_bad"), { dataset: { choice: "both_bad" } }),
      button("Both good", "g", () => submit("compare", "both_good"), { dataset: { choice: "both_good" } }),
    );
    keys.textContent = "a / ← A better · b / → B better · t tie · x both bad · g both good · s skip · u undo";
  } else {
    const order = state.rank[query.query_id] || [];
    const k = query.item_ids.length;
    box.append(
      button("Submit ranking", "Enter", rankSubmit, {
        class: "primary",
        id: "rank-submit",
        disabled: order.length !== k,
      }),
      button("Back", "⌫", rankBack, { id: "rank-back", disabled: order.length === 0 }),
    );
    keys.textContent = `Click episodes (or press 1–${k}) best first · ⌫ back · Enter submit · s skip · u undo`;
  }
  box.append(
    button("Skip", "s", () => submit("skip", null), { class: "skip", dataset: { skip: "1" } }),
    button("Undo", "u", undo, { class: "undo", id: "undo" }),
  );
}

function renderCurrent() {
  const cards = $("#cards");
  const query = state.current;
  cards.replaceChildren();
  cards.className = `cards ${query ? query.kind : "empty"}`;
  cards.dataset.queryId = query ? String(query.query_id) : "";
  if (!state.rater) {
    cards.append(el("p", { class: "empty-note", text: "Type your name in the Rater box above to start labelling." }));
  } else if (!query) {
    cards.append(
      el("p", {
        class: "empty-note",
        text: "Nothing to label right now. New episodes appear here as training produces them.",
      }),
    );
  } else {
    const title = {
      single: "How good is this response?",
      pair: "Which response is better?",
      ranking: "Rank these responses, best first",
    }[query.kind];
    cards.append(
      el("h1", { class: "ask" }, title, el("span", { class: "muted", text: ` query #${query.query_id}` })),
    );
    const row = el("div", { class: "row" });
    query.items.forEach((item, i) => row.append(renderItem(item, i, query)));
    cards.append(row);
  }
  renderActions(query);
}

function renderQueue() {
  const list = $("#queue");
  list.replaceChildren();
  const pending = state.progress ? state.progress.pending : state.queue.length;
  $("#queue-count").textContent = state.rater ? `${pending} pending` : "";
  for (const q of state.queue) {
    const thumbs = el("span", { class: "thumbs-row" });
    for (const item of q.items.slice(0, 4)) {
      if (item.has_image) thumbs.append(el("img", { src: imageUrl(item.id), alt: "" }));
    }
    const first = q.items[0] || {};
    list.append(
      el(
        "li",
        {
          class: state.current && q.query_id === state.current.query_id ? "active" : "",
          dataset: { queryId: String(q.query_id) },
          onclick: () => {
            state.current = q;
            render();
          },
        },
        thumbs,
        el(
          "span",
          { class: "qtext" },
          el("span", { class: `badge ${q.kind}`, text: q.kind === "single" ? "rate" : q.kind === "pair" ? "compare" : `rank ${q.items.length}` }),
          el("span", { text: ` ${first.task || ""}: ${first.prompt || ""}` }),
        ),
      ),
    );
  }
  if (!state.queue.length && state.rater) list.append(el("li", { class: "muted", text: "empty" }));
}

async function loadStats() {
  if (state.config && state.config.token_required && !state.token) return;
  let stats;
  try {
    stats = await api("/api/stats");
  } catch (_) {
    return;
  }
  const body = $("#raters tbody");
  body.replaceChildren();
  const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(100 * x)}%`);
  for (const [name, r] of Object.entries(stats.raters)) {
    body.append(
      el(
        "tr",
        { class: name === state.rater ? "me" : "", dataset: { rater: name } },
        el("td", { text: name }),
        el("td", { text: String(r.labels) }),
        el("td", { text: String(r.skips) }),
        el("td", { text: pct(r.agreement), title: `${r.compared} comparisons with other raters` }),
      ),
    );
  }
  if (!Object.keys(stats.raters).length) {
    body.append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "no labels yet" })));
  }
  const a = stats.agreement;
  $("#agreement").textContent =
    a.overall === null
      ? "Agreement shows once two raters label the same query."
      : `Inter-rater agreement: ${pct(a.overall)} over ${a.comparisons} shared labels.`;
}

// --- toast and keys --------------------------------------------------------------------------

let toastTimer = null;

function toast(message, error = false) {
  const node = $("#toast");
  node.textContent = message;
  node.className = `toast${error ? " error" : ""}`;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (node.hidden = true), error ? 6000 : 2500);
}

function onKey(event) {
  const tag = (event.target && event.target.tagName) || "";
  if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  const q = state.current;
  let handled = true;
  if (key === "u" || key === "U") undo();
  else if (!q) handled = false;
  else if (key === "s" || key === "S") submit("skip", null);
  else if (q.kind === "single") {
    const n = Number(key);
    if (Number.isInteger(n) && n >= 1 && n <= levels()) submit("rating", n);
    else if (key === "y" || key === "+") submit("thumbs", "up");
    else if (key === "n" || key === "-") submit("thumbs", "down");
    else handled = false;
  } else if (q.kind === "pair") {
    if (key === "a" || key === "ArrowLeft") submit("compare", "a");
    else if (key === "b" || key === "ArrowRight") submit("compare", "b");
    else if (key === "t") submit("compare", "tie");
    else if (key === "x") submit("compare", "both_bad");
    else if (key === "g") submit("compare", "both_good");
    else handled = false;
  } else {
    const n = Number(key);
    if (Number.isInteger(n) && n >= 1 && n <= q.item_ids.length) {
      const id = q.item_ids[n - 1];
      if (!(state.rank[q.query_id] || []).includes(id)) rankPick(id);
    } else if (key === "Backspace") rankBack();
    else if (key === "Enter") rankSubmit();
    else if (key === "r") {
      state.rank[q.query_id] = [];
      render();
    } else handled = false;
  }
  if (handled) event.preventDefault();
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  const params = new URLSearchParams(location.search);
  state.rater = (params.get("rater") || localStorage.getItem("mmrlhf.rater") || "").trim();
  state.token = params.get("token") || localStorage.getItem("mmrlhf.token") || "";
  $("#rater").value = state.rater;
  $("#token").value = state.token;
  try {
    state.config = await api("/api/config");
  } catch (err) {
    toast(`cannot reach the label server: ${err.message}`, true);
    return;
  }
  $("#token-field").hidden = !state.config.token_required;
  $("#who").addEventListener("submit", (e) => e.preventDefault());
  $("#rater").addEventListener("change", (e) => {
    state.rater = e.target.value.trim();
    localStorage.setItem("mmrlhf.rater", state.rater);
    state.pinned = null;
    state.current = null;
    refresh().then(loadStats);
  });
  $("#token").addEventListener("change", (e) => {
    state.token = e.target.value.trim();
    localStorage.setItem("mmrlhf.token", state.token);
    refresh().then(loadStats);
  });
  $("#kind-filter").addEventListener("change", (e) => {
    state.kind = e.target.value;
    state.current = null;
    refresh();
  });
  document.addEventListener("keydown", onKey);
  await refresh();
  await loadStats();
  if (!state.rater) $("#rater").focus();
  setInterval(() => {
    if (!state.busy && document.visibilityState === "visible") refresh();
  }, POLL_MS);
  setInterval(loadStats, STATS_MS);
}

start();

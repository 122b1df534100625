"""Learning curves as PNG: return, accuracy, feedback reward and labels used, several runs on
one figure. Reads `progress.jsonl` (from `train`) or Tune's `result.json` (from `tune`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrlhf.trainers.metrics import summarize

PANELS: tuple[tuple[str, str], ...] = (
    ("return_mean", "episode return"),
    ("accuracy", "accuracy (ground truth)"),
    ("feedback_reward", "feedback reward"),
    ("labels", "labels used"),
)


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """Per-iteration headline metrics of one run directory ([] if it has none)."""
    progress = run_dir / "progress.jsonl"
    if progress.is_file():
        return [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    result = run_dir / "result.json"
    if result.is_file():
        return [summarize(json.loads(line)) for line in result.read_text().splitlines() if line]
    return []


def find_runs(root: Path) -> list[Path]:
    """Run directories under `root` (itself included) that hold per-iteration results."""
    hits = {p.parent for name in ("progress.jsonl", "result.json") for p in root.rglob(name)}
    return sorted(hits)


def plot_runs(run_dirs: Sequence[Path], out: Path, x: str = "env_steps") -> Path:
    """Draw every run's curves on one 2x2 figure and save it to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histories = {d: read_history(d) for d in run_dirs}
    histories = {d: h for d, h in histories.items() if h}
    if not histories:
        raise ValueError(f"no progress.jsonl or result.json in {[str(d) for d in run_dirs]}")
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, title) in zip(axes.flat, PANELS, strict=True):
        for run, hist in histories.items():
            pts = [(r.get(x), r.get(key)) for r in hist if r.get(x) is not None]
            pts = [(a, b) for a, b in pts if b is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=run.name)
        ax.set_title(title)
        ax.set_xlabel(x.replace("_", " "))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

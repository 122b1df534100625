"""`LabelLog`: every label a reward model trained on, with its episodes, kept on disk.

The hub appends each batch of accepted labels as one numbered chunk (`labels-00001.pkl`, ...)
holding the labels and only the episodes no earlier chunk holds, so a run writes each episode
once (about 12 KB for a 64x64 image) and a crash loses at most the last batch.
`load_label_log` reads the chunks back in order: the label set of an online run, which can be
refitted offline (`train_reward_model(labels=...)`, `scripts/bench_rm_offline.py --labels`) to
tell what the labels can teach apart from how the online loop trained on them.

Chunks are pickles: read only logs you wrote yourself.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmrlhf.feedback.preferences import RLHFLabel
from mmrlhf.feedback.samples import EpisodeSample

logger = logging.getLogger(__name__)

CHUNK_PATTERN = re.compile(r"labels-(\d{5,})\.pkl")
CHUNK_VERSION = 1


class LabelLog:
    """Appends label batches to a directory of numbered chunks.

    Args:
        path: Directory (created). Chunks already there are kept and numbered after: a
            resumed run goes on appending.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        existing = chunk_paths(self.path)
        self._next = _chunk_number(existing[-1]) + 1 if existing else 1
        self._written: set[str] = set()
        for chunk in existing:
            self._written.update(_read_chunk(chunk)["samples"])
        self.labels_written = 0

    def append(
        self, labels: Sequence[RLHFLabel], samples: Mapping[str, EpisodeSample]
    ) -> Path | None:
        """Write one chunk: `labels` and those of their episodes not written before.

        Raises:
            KeyError: A label names an episode that is neither in `samples` nor written.
        """
        if not labels:
            return None
        new: dict[str, EpisodeSample] = {}
        for label in labels:
            for episode_id in label.episode_ids:
                if episode_id in self._written or episode_id in new:
                    continue
                if episode_id not in samples:
                    raise KeyError(
                        f"label names episode {episode_id!r}, which is neither in this batch's "
                        "samples nor in an earlier chunk of the log"
                    )
                new[episode_id] = samples[episode_id]
        out = self.path / f"labels-{self._next:05d}.pkl"
        tmp = out.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(
                {"version": CHUNK_VERSION, "labels": list(labels), "samples": new}, f,
                protocol=pickle.HIGHEST_PROTOCOL,
            )  # fmt: skip
        tmp.replace(out)  # a reader never sees half a chunk
        self._next += 1
        self._written.update(new)
        self.labels_written += len(labels)
        return out


def chunk_paths(path: str | Path) -> list[Path]:
    """The log's chunk files in write order."""
    found = [p for p in Path(path).iterdir() if CHUNK_PATTERN.fullmatch(p.name)]
    return sorted(found, key=_chunk_number)


def _chunk_number(path: Path) -> int:
    match = CHUNK_PATTERN.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a label-log chunk name (labels-NNNNN.pkl)")
    return int(match.group(1))


def _read_chunk(path: Path) -> dict:
    with path.open("rb") as f:
        chunk = pickle.load(f)
    if not isinstance(chunk, dict) or chunk.get("version") != CHUNK_VERSION:
        raise ValueError(
            f"{path} is not a label-log chunk of version {CHUNK_VERSION} "
            f"(found {chunk.get('version') if isinstance(chunk, dict) else type(chunk).__name__})"
        )
    return chunk


def load_label_log(path: str | Path) -> tuple[list[RLHFLabel], dict[str, EpisodeSample]]:
    """Every label of a log, oldest first, and the episodes they name.

    Raises:
        FileNotFoundError: `path` is not a directory or holds no chunk.
        ValueError: A chunk is of another format, or a label names an episode no chunk holds.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"label log {root} is not a directory")
    chunks = chunk_paths(root)
    if not chunks:
        raise FileNotFoundError(f"label log {root} holds no labels-NNNNN.pkl chunk")
    labels: list[RLHFLabel] = []
    samples: dict[str, EpisodeSample] = {}
    for chunk_path in chunks:
        chunk = _read_chunk(chunk_path)
        samples.update(chunk["samples"])
        labels.extend(chunk["labels"])
    missing = {i for label in labels for i in label.episode_ids if i not in samples}
    if missing:
        raise ValueError(f"label log {root} names {len(missing)} episodes it does not hold")
    logger.info("read %d labels on %d episodes from %s", len(labels), len(samples), root)
    return labels, samples

"""The user's own data: visual question answering over a local JSONL file and image folder.

Each JSONL line is an object::

    {"image": "imgs/0001.png", "question": "what is on the table?", "answer": "cup",
     "choices": ["cup", "plate", "fork"], "split": "train"}

`choices` and `split` are optional. Image paths are relative to `image_dir` (default: the JSONL's
folder). The answer vocabulary (the action space) is every answer and choice in the file, sorted;
the text vocabulary is built from the questions and choices unless `tokenizer_path` is set.
Rows are validated when the env is built; images are decoded lazily and kept in an LRU cache.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.tasks.base import Observation, Outcome, Task, register_task
from mmrlhf.envs.tokenizer import Tokenizer, WordTokenizer


@dataclass(frozen=True, slots=True)
class Row:
    """One validated example; `line` is its 1-based line number in the JSONL file."""

    image: Path
    question: str
    answer: str
    choices: tuple[str, ...]
    split: str | None
    line: int

    @property
    def text(self) -> str:
        if not self.choices:
            return self.question
        return " <sep> ".join([self.question, *self.choices])


class DatasetError(ValueError):
    """A bad dataset file, row or image; the message names the file and line."""


def load_rows(path: Path, image_dir: Path) -> list[Row]:
    """Parse and validate every line of a JSONL dataset (image files must exist)."""
    if not path.is_file():
        raise DatasetError(f"dataset_path {str(path)!r} does not exist or is not a file")
    rows: list[Row] = []
    with path.open(encoding="utf-8") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(item, dict):
                raise DatasetError(f"{where}: expected a JSON object, got {type(item).__name__}")
            unknown = set(item) - {"image", "question", "answer", "choices", "split"}
            if unknown:
                raise DatasetError(
                    f"{where}: unknown keys {sorted(unknown)}; allowed: image, question, "
                    "answer, choices, split"
                )
            for key in ("image", "question", "answer"):
                if not isinstance(item.get(key), str) or not item[key].strip():
                    raise DatasetError(f"{where}: {key!r} must be a non-empty string")
            choices = item.get("choices", [])
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise DatasetError(f"{where}: 'choices' must be a list of strings")
            if choices and item["answer"] not in choices:
                raise DatasetError(f"{where}: answer {item['answer']!r} is not among choices")
            split = item.get("split")
            if split not in (None, "train", "test"):
                raise DatasetError(f"{where}: 'split' must be 'train' or 'test', got {split!r}")
            image = image_dir / item["image"]
            if not image.is_file():
                raise DatasetError(f"{where}: image file {str(image)!r} not found")
            rows.append(
                Row(image, item["question"], item["answer"], tuple(choices), split, n)
            )
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


@register_task
class DatasetTask(Task):
    """Answer questions about the user's images. One step; the action indexes `answers`."""

    name = "dataset"

    def __init__(self, cfg: EnvConfig, tokenizer: Tokenizer | None = None) -> None:
        if cfg.dataset_path is None:
            raise ValueError("task 'dataset' needs dataset_path (a JSONL file)")
        path = Path(cfg.dataset_path)
        image_dir = Path(cfg.image_dir) if cfg.image_dir else path.parent
        all_rows = load_rows(path, image_dir)
        self.answers: tuple[str, ...] = tuple(
            sorted({r.answer for r in all_rows} | {c for r in all_rows for c in r.choices})
        )
        self._answer_index = {a: i for i, a in enumerate(self.answers)}
        has_splits = any(r.split for r in all_rows)
        self.rows = [r for r in all_rows if not has_splits or r.split == cfg.split]
        if not self.rows:
            raise DatasetError(f"{path}: no rows with split={cfg.split!r}")
        self._all_rows = all_rows
        super().__init__(cfg, tokenizer)
        self._images: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.row: Row | None = None
        self.chosen: int | None = None
        self.image = np.zeros((0, 0, 3), dtype=np.uint8)

    def make_tokenizer(self) -> Tokenizer:
        return WordTokenizer.from_texts(r.text for r in self._all_rows)

    @property
    def num_actions(self) -> int:
        return len(self.answers)

    def action_name(self, action: int) -> str:
        return self.answers[action]

    def _load(self, row: Row) -> np.ndarray:
        cached = self._images.get(row.image)
        if cached is not None:
            self._images.move_to_end(row.image)
            return cached
        from PIL import Image, UnidentifiedImageError

        size = self.cfg.image_size
        try:
            with Image.open(row.image) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
        except (OSError, UnidentifiedImageError) as e:
            raise DatasetError(
                f"{self.cfg.dataset_path}:{row.line}: cannot read image {str(row.image)!r} ({e})"
            ) from None
        if self.cfg.image_cache_size:
            self._images[row.image] = arr
            if len(self._images) > self.cfg.image_cache_size:
                self._images.popitem(last=False)
        return arr

    def reset(self, rng: np.random.Generator) -> Observation:
        self.row = self.rows[int(rng.integers(len(self.rows)))]
        self.chosen = None
        self.image = self._load(self.row)
        return Observation(self.image, self.encode(self.row.text))

    def step(self, action: int) -> Outcome:
        assert self.row is not None, "step() before reset()"
        self.chosen = action
        score = float(self.answers[action] == self.row.answer)
        obs = Observation(self.image, self.encode(self.row.text))
        return Outcome(obs, True, score, success=score == 1.0)

    def oracle_action(self) -> int:
        assert self.row is not None
        return self._answer_index[self.row.answer]

    def prompt(self) -> str:
        return self.row.text if self.row else ""

    def response(self) -> str:
        return "" if self.chosen is None else self.answers[self.chosen]

    def ground_truth(self) -> str:
        return self.row.answer if self.row else ""

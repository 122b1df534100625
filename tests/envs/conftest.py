"""Fixtures for env tests: a tiny on-disk VQA dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_dataset(root: Path, rows: list[dict[str, object]]) -> Path:
    path = root / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def vqa_dataset(tmp_path: Path) -> dict[str, str]:
    """Four images (red / blue, each in train and test) with a question each."""
    (tmp_path / "imgs").mkdir()
    rows = []
    for i, (color, rgb) in enumerate([("red", (255, 0, 0)), ("blue", (0, 0, 255))] * 2):
        arr = np.zeros((40, 30, 3), dtype=np.uint8)
        arr[:] = rgb
        Image.fromarray(arr).save(tmp_path / "imgs" / f"{i}.png")
        rows.append(
            {
                "image": f"imgs/{i}.png",
                "question": "what color is the picture?",
                "answer": color,
                "choices": ["red", "blue", "green"],
                "split": "train" if i < 2 else "test",
            }
        )
    return {"dataset_path": str(write_dataset(tmp_path, rows))}

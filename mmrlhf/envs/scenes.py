"""Procedural scenes: objects with a colour, a shape, a size and a grid cell.

Everything here is pure: a scene is drawn from a `numpy.random.Generator` the env owns, so the same
seed gives the same scene. Rendering lives in `render.py`.

Splits: a few colour-shape pairs are *held out*. `split="train"` never shows them anywhere;
`split="test"` makes the episode's target object a held-out pair, so test accuracy measures
generalisation to unseen attribute combinations (CLEVR-CoGenT style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
SIZES: tuple[str, ...] = ("small", "large")
GRID = 3
POSITIONS: tuple[str, ...] = (
    "top-left", "top", "top-right",
    "left", "center", "right",
    "bottom-left", "bottom", "bottom-right",
)  # fmt: skip
MAX_OBJECTS = 6

# Colour-shape pairs never seen in training. Each shape and four of the colours appear in exactly
# one held-out pair, so every attribute is familiar on its own; only the combination is new.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("red", "triangle"), ("green", "circle"), ("blue", "diamond"), ("yellow", "square")}
)

Split = Literal["train", "test"]

ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLORS for s in SHAPES)
TRAIN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
TEST_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p in HELD_OUT)


@dataclass(frozen=True, slots=True)
class SceneObject:
    """One object: attributes plus the grid cell (0..8, row-major) it occupies."""

    color: str
    shape: str
    size: str
    cell: int

    @property
    def pair(self) -> tuple[str, str]:
        return (self.color, self.shape)

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    def words(self) -> tuple[str, str, str]:
        """The canonical description: size, colour, shape."""
        return (self.size, self.color, self.shape)


@dataclass(frozen=True, slots=True)
class Scene:
    """A set of objects in distinct cells; `objects[0]` is the episode's target."""

    objects: tuple[SceneObject, ...]

    @property
    def target(self) -> SceneObject:
        return self.objects[0]

    def reading_order(self) -> tuple[SceneObject, ...]:
        """Objects sorted by cell, top-left to bottom-right (how captions list them)."""
        return tuple(sorted(self.objects, key=lambda o: o.cell))

    def count(self, shape: str) -> int:
        return sum(o.shape == shape for o in self.objects)


def pairs_for(split: Split) -> tuple[tuple[str, str], ...]:
    """Colour-shape pairs a *target* may use in `split`."""
    return TEST_PAIRS if split == "test" else TRAIN_PAIRS


def sample_scene(
    rng: np.random.Generator,
    num_objects: int,
    split: Split,
    *,
    distinct_pairs: bool = True,
    all_targets: bool = False,
    unique: Literal["color", "shape"] | None = None,
) -> Scene:
    """Draw a scene of `num_objects` objects in distinct cells.

    Args:
        rng: the env's generator (all randomness comes from it).
        num_objects: 1..MAX_OBJECTS.
        split: "train" keeps held-out pairs out of the whole scene; "test" makes the target
            (object 0) a held-out pair while distractors come from the training pairs.
        distinct_pairs: no two objects share a colour-shape pair, so "the red circle" is unique.
        all_targets: every object is drawn like the target (for tasks whose target is the whole
            scene, such as captioning).
        unique: no distractor shares this attribute with the target, so "the triangle" or
            "the red object" names exactly one object.
    """
    if not 1 <= num_objects <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be in 1..{MAX_OBJECTS}, got {num_objects}")
    target_pairs = pairs_for(split)
    if all_targets and distinct_pairs and num_objects > len(target_pairs):
        raise ValueError(
            f"cannot draw {num_objects} distinct {split}-split targets: only "
            f"{len(target_pairs)} colour-shape pairs are in that split"
        )
    key = {"color": 0, "shape": 1}.get(unique or "", -1)
    # One generator call per scene: reset speed matters (one-step tasks reset every step).
    u = rng.random(GRID * GRID + 2 * num_objects)
    cells = np.argsort(u[: GRID * GRID])[:num_objects]
    sizes = (u[GRID * GRID : GRID * GRID + num_objects] * len(SIZES)).astype(np.intp)
    picks = u[GRID * GRID + num_objects :]
    # Resampling only happens on a pair collision.
    chosen: list[tuple[str, str]] = []
    for i in range(num_objects):
        pool = target_pairs if (i == 0 or all_targets) else TRAIN_PAIRS
        pair = pool[int(picks[i] * len(pool))]
        while (distinct_pairs and pair in chosen) or (
            i > 0 and key >= 0 and pair[key] == chosen[0][key]
        ):
            pair = pool[int(rng.integers(len(pool)))]
        chosen.append(pair)
    objects = tuple(
        SceneObject(c, s, SIZES[z], cell)
        for (c, s), z, cell in zip(chosen, sizes.tolist(), cells.tolist(), strict=True)
    )
    return Scene(objects)

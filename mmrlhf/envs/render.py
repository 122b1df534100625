"""Fast scene rendering with cached numpy sprites, and PIL frames for `env.render()`.

Rendering is on the hot path of every reset, so shapes are rasterised once per
(shape, size, box) into boolean masks and pasted with one indexed assignment per object.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from mmrlhf.envs.scenes import COLOR_RGB, GRID, SceneObject

BACKGROUND = 24
_SIZE_FRACTION = {"small": 0.55, "large": 0.95}


@lru_cache(maxsize=512)
def sprite_mask(shape: str, size: str, box: int) -> np.ndarray:
    """Boolean (box, box) mask of `shape` at `size`, centred in the box."""
    extent = max(2.0, box * _SIZE_FRACTION[size])
    c = (box - 1) / 2.0
    r = extent / 2.0
    y, x = np.mgrid[0:box, 0:box].astype(np.float32)
    dy, dx = y - c, x - c
    if shape == "circle":
        mask = dx * dx + dy * dy <= r * r
    elif shape == "square":
        mask = (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    elif shape == "triangle":
        # Apex up: the half-width grows linearly from the top edge to the bottom edge.
        top, bottom = c - r, c + r
        half = (y - top) / max(bottom - top, 1e-6) * r
        mask = (y >= top) & (y <= bottom) & (np.abs(dx) <= half)
    elif shape == "diamond":
        mask = np.abs(dx) + np.abs(dy) <= r
    else:
        raise ValueError(f"unknown shape {shape!r}; allowed: circle, square, triangle, diamond")
    mask.setflags(write=False)
    return mask


@lru_cache(maxsize=16)
def _color_array(color: str) -> np.ndarray:
    return np.array(COLOR_RGB[color], dtype=np.uint8)


def blank(height: int, width: int) -> np.ndarray:
    """A background canvas."""
    return np.full((height, width, 3), BACKGROUND, dtype=np.uint8)


def draw_object(canvas: np.ndarray, obj: SceneObject, top: int, left: int, box: int) -> None:
    """Paint `obj` into the `box`-sized square of `canvas` at (top, left)."""
    idx = _pixel_indices(obj.shape, obj.size, box, top, left, canvas.shape[1])
    canvas.reshape(-1, 3)[idx] = _color_array(obj.color)


@lru_cache(maxsize=4096)
def _pixel_indices(shape: str, size: str, box: int, top: int, left: int, width: int) -> np.ndarray:
    # Flat pixel indices of a sprite placed on a canvas: integer indexing into a contiguous
    # (H*W, 3) view is several times faster than a boolean mask on a strided sub-view.
    ys, xs = np.nonzero(sprite_mask(shape, size, box))
    return (ys + top) * width + (xs + left)


def render_scene(objects: Sequence[SceneObject], image_size: int) -> np.ndarray:
    """Render objects on the GRID x GRID layout into an (S, S, 3) uint8 image."""
    canvas = blank(image_size, image_size)
    cell = image_size // GRID
    pad = (image_size - cell * GRID) // 2
    for obj in objects:
        row, col = divmod(obj.cell, GRID)
        draw_object(canvas, obj, pad + row * cell, pad + col * cell, cell)
    return canvas


def render_tiles(objects: Sequence[SceneObject], image_size: int) -> np.ndarray:
    """Tile single objects (one per candidate) into one image, row-major.

    Each object fills its tile; a grey separator line between tiles lets the model tell the
    candidates apart. The objects' own `cell` is ignored.
    """
    n = len(objects)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    tile = image_size // max(rows, cols)
    canvas = blank(image_size, image_size)
    for i, obj in enumerate(objects):
        r, c = divmod(i, cols)
        draw_object(canvas, obj, r * tile, c * tile, tile - 1)
        canvas[r * tile + tile - 1, c * tile : (c + 1) * tile] = 90
        canvas[r * tile : (r + 1) * tile, c * tile + tile - 1] = 90
    return canvas


def text_panel(image: np.ndarray, lines: Sequence[str], scale: int = 4) -> np.ndarray:
    """An RGB frame: the observation image enlarged, with `lines` of text beneath it."""
    from PIL import Image, ImageDraw

    big = Image.fromarray(image).resize(
        (image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST
    )
    line_h = 12
    width = max(big.width, 8 + 6 * max((len(s) for s in lines), default=0))
    frame = Image.new("RGB", (width, big.height + line_h * len(lines) + 8), (255, 255, 255))
    frame.paste(big, (0, 0))
    draw = ImageDraw.Draw(frame)
    for i, line in enumerate(lines):
        draw.text((4, big.height + 4 + i * line_h), line, fill=(0, 0, 0))
    return np.asarray(frame)

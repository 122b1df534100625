"""Episode images in the label store: PNG for uint8 images, `.npy` bytes otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


def encode_image(image: np.ndarray) -> tuple[bytes, str, list[int]]:
    """Encode an image array: PNG for uint8 HxW / HxWx{1,3,4}, else `.npy` bytes.

    Returns:
        (bytes, format `"png"` or `"npy"`, shape).
    """
    arr = np.asarray(image)
    shape = [int(s) for s in arr.shape]
    pngable = arr.dtype == np.uint8 and (
        arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))
    )
    if pngable:
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr).save(
            buf, format="PNG"
        )
        return buf.getvalue(), "png", shape
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue(), "npy", shape


def decode_image(data: bytes, fmt: str, shape: Sequence[int] | None) -> np.ndarray:
    """Inverse of `encode_image` (bit-exact)."""
    if fmt == "png":
        arr = np.asarray(Image.open(io.BytesIO(data)))
        return arr.reshape(tuple(shape)) if shape else arr
    if fmt == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    raise ValueError(f"unknown image format {fmt!r}; known: png, npy")


def to_png(data: bytes, fmt: str, shape: Sequence[int] | None) -> bytes | None:
    if fmt == "png":
        return data
    arr = decode_image(data, fmt, shape)
    if (arr.ndim == 3 and arr.shape[2] in (1, 3, 4)) or arr.ndim == 2:
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.number):
                return None
            scale = 255.0 if float(np.nanmax(arr, initial=0)) <= 1.0 else 1.0
            arr = np.clip(np.nan_to_num(arr * scale), 0, 255).astype(np.uint8)
        return encode_image(arr)[0]
    return None

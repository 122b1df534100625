"""Validation of the observation layout the multimodal model expects."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

EXPECTED_LAYOUT = (
    "gymnasium.spaces.Dict(image=Box(0, 255, (H, W, 3), uint8), "
    "text=Box(0, V-1, (L,), int64)) with text id 0 = padding"
)


@dataclass(frozen=True)
class ObservationLayout:
    """Sizes read from a valid observation space.

    Attributes:
        height: Image height H.
        width: Image width W.
        text_len: Token sequence length L.
        vocab_size: Text vocabulary size V (``text.high.max() + 1``).
    """

    height: int
    width: int
    text_len: int
    vocab_size: int


def _fail(reason: str, space: gym.Space) -> ValueError:
    return ValueError(
        f"MultimodalModel needs observations laid out as {EXPECTED_LAYOUT}; {reason}. "
        f"Got: {space!r}"
    )


def parse_observation_space(space: gym.Space | None) -> ObservationLayout:
    """Check ``space`` against the env contract and return its sizes.

    Args:
        space: The observation space RLlib passes to the module.

    Returns:
        The image and text sizes.

    Raises:
        ValueError: If the space is not the expected Dict; the message states the layout.
    """
    if not isinstance(space, gym.spaces.Dict):
        raise _fail("the space is not a gymnasium.spaces.Dict", space)
    missing = {"image", "text"} - set(space.spaces)
    if missing:
        raise _fail(f"missing key(s) {sorted(missing)}", space)
    image, text = space["image"], space["text"]
    if not isinstance(image, gym.spaces.Box) or image.dtype != np.uint8:
        raise _fail("'image' must be a uint8 Box", space)
    if len(image.shape) != 3 or image.shape[2] != 3:
        raise _fail(f"'image' must have shape (H, W, 3), not {image.shape}", space)
    if not isinstance(text, gym.spaces.Box) or not np.issubdtype(text.dtype, np.integer):
        raise _fail("'text' must be an integer (int64) Box", space)
    if len(text.shape) != 1 or text.shape[0] < 1:
        raise _fail(f"'text' must have shape (L,) with L >= 1, not {text.shape}", space)
    if np.any(text.low < 0):
        raise _fail("'text' ids must be >= 0", space)
    vocab_size = int(np.max(text.high)) + 1
    if vocab_size < 2:
        raise _fail("'text' vocabulary must hold padding (0) and at least one token", space)
    return ObservationLayout(
        height=int(image.shape[0]),
        width=int(image.shape[1]),
        text_len=int(text.shape[0]),
        vocab_size=vocab_size,
    )

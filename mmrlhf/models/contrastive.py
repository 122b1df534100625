"""Symmetric InfoNCE (CLIP-style) loss between paired image and text embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    image: torch.Tensor,
    text: torch.Tensor,
    temperature: float = 0.1,
    image_ids: torch.Tensor | None = None,
    text_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE loss; row i of ``image`` and row i of ``text`` are a positive pair.

    ``logits = normalize(image) @ normalize(text).T / temperature``; the loss is the mean of
    the cross-entropy over rows (image -> text) and over columns (text -> image), with the
    diagonal as the target.

    RL batches repeat observations (consecutive steps share an image, several questions share
    a scene). Passing ``image_ids`` / ``text_ids`` (equal ids = identical content) removes
    such false negatives: an off-diagonal pair (i, j) with the same image or the same text is
    left out of the softmax.

    Args:
        image: Image embeddings (B, D).
        text: Text embeddings (B, D).
        temperature: Softmax temperature (> 0).
        image_ids: Optional content ids (B,) of the images.
        text_ids: Optional content ids (B,) of the texts.

    Returns:
        Scalar loss.
    """
    if image.shape != text.shape or image.dim() != 2:
        raise ValueError(
            f"Expected two (B, D) tensors, got {tuple(image.shape)} and {tuple(text.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / temperature
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    same = torch.zeros_like(eye)
    for ids in (image_ids, text_ids):
        if ids is not None:
            same |= ids[:, None] == ids[None, :]
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    targets = torch.arange(n, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def content_ids(rows: torch.Tensor) -> torch.Tensor:
    """Id per row of ``rows`` (B, ...): equal rows get equal ids (for :func:`info_nce`)."""
    _, inverse = torch.unique(rows.reshape(rows.shape[0], -1), dim=0, return_inverse=True)
    return inverse

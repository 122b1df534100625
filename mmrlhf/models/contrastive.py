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
    return info_nce_from_scores(logits, image_ids=image_ids, text_ids=text_ids)


def info_nce_from_scores(
    logits: torch.Tensor,
    image_ids: torch.Tensor | None = None,
    text_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE on a precomputed (B, B) score matrix, already divided by the
    temperature: ``logits[i, j]`` scores image i against text j, the diagonal holds the
    positives. Content ids mask false negatives as in :func:`info_nce`."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"Expected a square (B, B) score matrix, got {tuple(logits.shape)}")
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    same = torch.zeros_like(eye)
    for ids in (image_ids, text_ids):
        if ids is not None:
            same |= ids[:, None] == ids[None, :]
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    targets = torch.arange(n, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def token_match_scores(
    text_tokens: torch.Tensor, text_mask: torch.Tensor, image_tokens: torch.Tensor
) -> torch.Tensor:
    """Late-interaction (token-to-patch) similarity of every image with every text.

    ``scores[i, j]`` is the mean over text j's real tokens of the best cosine similarity
    between that token and any patch of image i. Unlike pooled embeddings, which only need to
    know *what* is in an image, this ties each word to the patch it describes (the FILIP
    objective), which is what answering about one object among several asks for.

    Args:
        text_tokens: (B, L, D) text token features.
        text_mask: (B, L) bool, True for real tokens.
        image_tokens: (B, P, D) image patch features.

    Returns:
        (B images, B texts) scores in [-1, 1].
    """
    if text_tokens.dim() != 3 or image_tokens.dim() != 3:
        raise ValueError(
            f"Expected (B, L, D) text and (B, P, D) image tokens, got "
            f"{tuple(text_tokens.shape)} and {tuple(image_tokens.shape)}"
        )
    if text_tokens.shape[-1] != image_tokens.shape[-1] or text_mask.shape != text_tokens.shape[:2]:
        raise ValueError(
            f"Token widths and the mask must agree: text {tuple(text_tokens.shape)}, mask "
            f"{tuple(text_mask.shape)}, image {tuple(image_tokens.shape)}"
        )
    t = F.normalize(text_tokens, dim=-1)
    v = F.normalize(image_tokens, dim=-1)
    best = torch.einsum("jld,ipd->ijlp", t, v).amax(dim=-1)  # (B img, B txt, L)
    m = text_mask.to(best.dtype)[None]  # (1, B txt, L)
    return (best * m).sum(-1) / m.sum(-1).clamp(min=1.0)


def content_ids(rows: torch.Tensor) -> torch.Tensor:
    """Id per row of ``rows`` (B, ...): equal rows get equal ids (for :func:`info_nce`)."""
    _, inverse = torch.unique(rows.reshape(rows.shape[0], -1), dim=0, return_inverse=True)
    return inverse

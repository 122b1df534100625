"""Attention primitives shared by the attention fusions: multi-head scaled dot-product
attention, written out, and the maps that say where it looked."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from mmrlhf.models.config import AttentionGate, AttentionMap


class Attention(NamedTuple):
    """One attention pass: the output and, per head, how the queries weighed the keys."""

    output: torch.Tensor  # (B, Tq, D)
    weights: torch.Tensor  # (B, h, Tq, Tk); 0 on masked keys
    scores: torch.Tensor  # (B, h, Tq, Tk) = Q K^T / sqrt(d_k); dtype min on masked keys


def check_heads(dim: int, num_heads: int) -> int:
    """The per-head width d_k = dim / num_heads; an error if the heads do not divide dim."""
    if dim % num_heads:
        raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
    return dim // num_heads


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, h, T, D / h)."""
    b, t, d = x.shape
    return x.view(b, t, num_heads, d // num_heads).transpose(1, 2)


def masked_weights(
    scores: torch.Tensor, key_mask: torch.Tensor, gate: AttentionGate
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (B, h, Tq, Tk) with masked keys at dtype min, and the gate's weights over the
    keys, 0 on masked keys (so a query with no real key gets no weight instead of NaN).

    ``sigmoid`` weighs each key on its own, ``sigmoid(score - log n)`` over the n real keys:
    at zero scores every weight is ~1/n, as softmax's, so the output starts at the scale of a
    mean instead of n times it (the bias of Ramapuram et al. 2024, "Theory, analysis, and
    best practices for sigmoid self-attention"); a strong match still gets a weight near 1.
    """
    keep = key_mask[:, None, None, :]
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    if gate == "softmax":
        weights = torch.softmax(scores, -1)
    else:
        real = keep.sum(-1, keepdim=True).clamp(min=1).to(scores.dtype)
        weights = torch.sigmoid(scores - real.log())
    return scores, weights * keep.to(scores.dtype)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention, written out.

    ``softmax(Q K^T / sqrt(d_k)) V`` per head with d_k = dim / num_heads; keys where
    ``key_mask`` is False get no weight. A query whose keys are all masked attends to nothing
    and returns the output projection of zeros (its bias) instead of NaN.
    """

    def __init__(self, dim: int, num_heads: int, gate: AttentionGate = "softmax") -> None:
        super().__init__()
        self.gate = gate
        self.num_heads = num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return split_heads(x, self.num_heads)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        """Attend from ``query`` (B, Tq, D) to ``context`` (B, Tk, D) -> (B, Tq, D)."""
        return self.attend(query, context, key_mask).output

    def attend(
        self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor
    ) -> Attention:
        """Like ``forward``, also returning the per-head weights and scores."""
        q, k, v = (
            self._split(self.q(query)),
            self._split(self.k(context)),
            self._split(self.v(context)),
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, h, Tq, Tk)
        scores, weights = masked_weights(scores, key_mask, self.gate)
        mixed = (weights @ v).transpose(1, 2).reshape(query.shape)  # (B, Tq, D)
        return Attention(self.out(mixed), weights, scores)


def context_map(attention: Attention, query_mask: torch.Tensor) -> torch.Tensor:
    """Where the queries looked: each context token's weight, averaged over the real queries,
    per head, flattened to (B, h * Tk). Rows without a real query give zeros.

    A pooled attention output has mixed the positions away, so it cannot say *which* tile or
    listed description matched; a policy whose action names a position (retrieval) needs this
    pointer feature. Text querying tiled candidates lights up the tile that matches all its
    words; image patches querying a list light up the description that fits.
    """
    real = query_mask[:, None, :, None].to(attention.weights.dtype)  # (B, 1, Tq, 1)
    summed = (attention.weights * real).sum(2)  # (B, h, Tk)
    return (summed / real.sum(2).clamp(min=1.0)).flatten(1)


def query_map(attention: Attention, query_mask: torch.Tensor, key_mask: torch.Tensor
              ) -> torch.Tensor:  # fmt: skip
    """How well each query found a match: its best score over the real keys, per head,
    flattened to (B, h * Tq); 0 for padding queries and when no key is real.

    Text tokens scored against image patches light up the listed description that fits the
    pictured object: supervised image-to-text retrieval is at 0.99 after 20k labels, where
    the context map of the reverse direction reaches 0.86 after 200k. Raw scores carry
    content as well as position, so on vqa the policy also reads them as a shortcut that
    fails on held-out colour-shape pairs (supervised test accuracy 0.68 against 0.75-0.78
    without): keep it for tasks whose action names a text position.
    """
    scores = attention.scores.masked_fill(~key_mask[:, None, None, :], -torch.inf)
    any_key = key_mask.any(-1)[:, None, None]
    best = torch.where(any_key, scores.amax(-1), 0.0)  # (B, h, Tq)
    return (best * query_mask[:, None, :].to(best.dtype)).flatten(1)


def maps_dim(maps: Sequence[AttentionMap], num_heads: int, query_tokens: int,
             context_tokens: int) -> int:  # fmt: skip
    """Features the ``maps`` add: one per head and token each map covers."""
    sizes = {"query": query_tokens, "context": context_tokens}
    return sum(num_heads * sizes[m] for m in maps)


def attention_maps(
    attention: Attention,
    maps: Sequence[AttentionMap],
    query_mask: torch.Tensor,
    key_mask: torch.Tensor,
) -> list[torch.Tensor]:
    """The requested maps of one attention pass, in the order given (see :func:`context_map`
    and :func:`query_map`)."""
    return [
        context_map(attention, query_mask)
        if kind == "context"
        else query_map(attention, query_mask, key_mask)
        for kind in maps
    ]

"""Fusion of text and image features into one vector per sample.

Every fusion module takes the two :class:`EncoderOutput` (width D each) and returns features
(B, ``output_dim``). Pick one by name through :data:`FUSIONS`:

- ``concat``: [text_pooled, image_pooled] (2D).
- ``sum``: text_pooled + image_pooled (D).
- ``weighted``: softmax(w)[0] * text_pooled + softmax(w)[1] * image_pooled, w learned (D).
- ``cross_attention``: multi-head attention softmax(Q K^T / sqrt(d_k)) V between text tokens
  and image patches (direction from the config), residual + layer norm, masked mean over the
  queries; concatenated with the other modality's pooled vector, or with the reverse
  direction for ``both`` (2D). Each direction also returns the ``attention_maps`` asked for
  (default: where it looked, per head and context token; see :func:`context_map`).
- ``joint``: both pooled vectors projected into a shared space and L2-normalised; features
  [z_text, z_image, z_text * z_image, cos(z_text, z_image)] (3D + 1).
- ``factored_attention``: text tokens match and read the image's factors (form, colour,
  position) one at a time, through gates the query sets; the output is what was read, not
  the query's own words (D, plus maps). See :mod:`mmrlhf.models.factored_attention`.

The attention primitives (multi-head attention, its maps) live in
:mod:`mmrlhf.models.attention`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mmrlhf.models.attention import MultiHeadAttention, attention_maps, maps_dim
from mmrlhf.models.base import EncoderOutput, Fusion, TokenCounts, masked_mean, pick
from mmrlhf.models.config import AttentionGate, AttentionMap, ModelConfig
from mmrlhf.models.factored_attention import FactoredAttentionFusion


class ConcatFusion(Fusion):
    """Concatenate the pooled vectors."""

    def __init__(self, dim: int, cfg: ModelConfig, tokens: TokenCounts) -> None:
        super().__init__()
        self.output_dim = 2 * dim

    def forward(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        """Return [text_pooled, image_pooled]."""
        return torch.cat([text.pooled, image.pooled], dim=-1)


class SumFusion(Fusion):
    """Add the pooled vectors."""

    def __init__(self, dim: int, cfg: ModelConfig, tokens: TokenCounts) -> None:
        super().__init__()
        self.output_dim = dim

    def forward(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        """Return text_pooled + image_pooled."""
        return text.pooled + image.pooled


class WeightedFusion(Fusion):
    """Weighted sum with learned softmax weights over the two modalities (start: 0.5/0.5)."""

    def __init__(self, dim: int, cfg: ModelConfig, tokens: TokenCounts) -> None:
        super().__init__()
        self.output_dim = dim
        self.logits = nn.Parameter(torch.zeros(2))

    def weights(self) -> torch.Tensor:
        """Current (text, image) weights, summing to 1."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        """Return w_text * text_pooled + w_image * image_pooled."""
        w = self.weights()
        return w[0] * text.pooled + w[1] * image.pooled


class CrossAttentionBlock(nn.Module):
    """Queries attend to a context; residual + layer norm; masked mean over the queries.

    The output is the pooled attended queries (D), then the requested ``maps`` in the order
    given: ``context`` (:func:`context_map`, ``num_heads * context_tokens`` features) and
    ``query`` (:func:`query_map`, ``num_heads * query_tokens``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        gate: AttentionGate = "softmax",
        maps: tuple[AttentionMap, ...] = (),
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        """``tokens``: (query, context) tokens per sample, which size the maps."""
        super().__init__()
        self.attention = MultiHeadAttention(dim, num_heads, gate)
        self.norm = nn.LayerNorm(dim)
        self.maps = maps
        self.output_dim = dim + maps_dim(maps, num_heads, *tokens)

    def forward(self, queries: EncoderOutput, context: EncoderOutput) -> torch.Tensor:
        """Return the pooled attended queries (B, D), then the maps."""
        attention = self.attention.attend(queries.tokens, context.tokens, context.mask)
        pooled = masked_mean(self.norm(queries.tokens + attention.output), queries.mask)
        maps = attention_maps(attention, self.maps, queries.mask, context.mask)
        return torch.cat([pooled, *maps], dim=-1)


class CrossAttentionFusion(Fusion):
    """Cross-modal attention between text tokens and image patches.

    ``text_to_image``: text tokens are queries over image patches -> [attended_text,
    image_pooled]. ``image_to_text``: patches query text tokens -> [attended_image,
    text_pooled]. ``both``: [attended_text, attended_image]. Each attended part also carries
    the ``cfg.attention_maps`` of its direction (see :class:`CrossAttentionBlock`).
    """

    def __init__(self, dim: int, cfg: ModelConfig, tokens: TokenCounts) -> None:
        super().__init__()
        self.direction = cfg.cross_attention_direction
        block_args = (dim, cfg.num_heads, cfg.attention_gate, cfg.attention_maps)
        self.output_dim = 0
        if self.direction in ("text_to_image", "both"):
            self.text_to_image = CrossAttentionBlock(*block_args, (tokens.text, tokens.image))
            self.output_dim += self.text_to_image.output_dim
        if self.direction in ("image_to_text", "both"):
            self.image_to_text = CrossAttentionBlock(*block_args, (tokens.image, tokens.text))
            self.output_dim += self.image_to_text.output_dim
        if self.direction != "both":
            self.output_dim += dim

    def forward(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        """Fuse by cross-attention in the configured direction(s)."""
        if self.direction == "text_to_image":
            return torch.cat([self.text_to_image(text, image), image.pooled], dim=-1)
        if self.direction == "image_to_text":
            return torch.cat([self.image_to_text(image, text), text.pooled], dim=-1)
        return torch.cat([self.text_to_image(text, image), self.image_to_text(image, text)], -1)


class JointEmbeddingFusion(Fusion):
    """Project both modalities into a shared L2-normalised space (CLIP-style).

    Features: [z_text, z_image, z_text * z_image, cosine(z_text, z_image)].
    """

    def __init__(self, dim: int, cfg: ModelConfig, tokens: TokenCounts) -> None:
        super().__init__()
        self.text_proj = nn.Linear(dim, dim)
        self.image_proj = nn.Linear(dim, dim)
        self.output_dim = 3 * dim + 1

    def forward(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        """Return the joint-space features (B, 3D + 1)."""
        zt = F.normalize(self.text_proj(text.pooled), dim=-1)
        zi = F.normalize(self.image_proj(image.pooled), dim=-1)
        cosine = (zt * zi).sum(dim=-1, keepdim=True)
        return torch.cat([zt, zi, zt * zi, cosine], dim=-1)


FUSIONS: dict[str, Callable[[int, ModelConfig, TokenCounts], Fusion]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "weighted": WeightedFusion,
    "cross_attention": CrossAttentionFusion,
    "joint": JointEmbeddingFusion,
    "factored_attention": FactoredAttentionFusion,
}


def build_fusion(dim: int, cfg: ModelConfig, tokens: TokenCounts) -> Fusion:
    """Build the fusion module ``cfg.fusion`` for encoders of width ``dim``.

    ``tokens``: how many tokens the encoders emit (:func:`~mmrlhf.models.base.count_tokens`);
    attention maps have one feature per head and token.
    """
    factory = pick(FUSIONS, cfg.fusion, "fusion")
    return factory(dim, cfg, tokens)

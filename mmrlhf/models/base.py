"""What every encoder returns, and the small shared base class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:
    from mmrlhf.models.spaces import ObservationLayout

T = TypeVar("T")


# The factor that says where a token is (learned position embeddings); every other factor
# describes what is there.
POSITION_FACTOR = "position"
# The one factor of an image without separate streams: its patch features.
CONTENT_FACTOR = "content"


@dataclass
class EncoderOutput:
    """Features of one modality.

    Attributes:
        tokens: Token / patch features, shape (B, T, D).
        mask: True where a token is real (not padding), shape (B, T), dtype bool.
        pooled: One vector per sample, shape (B, D).
        factors: Optional parts that ``tokens`` combines, by name, each (B, T, D) or
            broadcastable to it (a position embedding is (1, T, D)). The two-stream CNN gives
            ``form``, ``color`` and ``position``; ``factored_attention`` matches and reads
            them one at a time. None: the encoder has no such parts.
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor
    factors: dict[str, torch.Tensor] | None = None


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``tokens`` (B, T, D) over the positions where ``mask`` (B, T) is True.

    Rows without any True position give a zero vector (not NaN).
    """
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class Encoder(nn.Module):
    """Base of text and image encoders: a ``backbone`` that can be frozen, then ``proj``.

    Subclasses set ``self.backbone`` and ``self.proj`` and implement ``forward`` returning an
    :class:`EncoderOutput` of width ``output_dim``. Freezing fixes the backbone's weights
    (no gradient, always in eval mode, run without autograd); ``proj`` keeps training so a
    frozen pretrained model can still be adapted to the policy's embedding size.
    """

    backbone: nn.Module
    proj: nn.Module

    def __init__(self, output_dim: int) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.frozen = False

    def freeze(self) -> None:
        """Stop gradients into the backbone and keep it in eval mode."""
        self.frozen = True
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> Encoder:
        """Switch train/eval mode; a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def backbone_grad(self) -> torch.autograd.grad_mode.set_grad_enabled:
        """Context manager: autograd off inside a frozen backbone (saves memory and time)."""
        return torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen)


@dataclass(frozen=True)
class TokenCounts:
    """How many tokens each encoder emits per sample (fixed for a given observation layout),
    and the names of the image encoder's factors (empty: it has none)."""

    text: int
    image: int
    image_factors: tuple[str, ...] = ()


def count_tokens(text: Encoder, image: Encoder, layout: ObservationLayout) -> TokenCounts:
    """Token counts of two encoders (and the image factors' names), found by encoding one
    blank observation of ``layout``.

    A dry run is the one way that holds for every encoder, pretrained towers included (their
    count depends on the model's own image size, patch size and [CLS] token).
    """
    ids = torch.zeros(1, layout.text_len, dtype=torch.long)
    pixels = torch.zeros(1, layout.height, layout.width, 3, dtype=torch.uint8)
    with torch.no_grad():
        image_out = image(pixels)
        factors = tuple(image_out.factors or ())
        return TokenCounts(text(ids).tokens.shape[1], image_out.tokens.shape[1], factors)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """Return (trainable, frozen) parameter counts of ``module``."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, frozen


def pick(registry: Mapping[str, T], name: str, field: str) -> T:
    """`registry[name]`, or a ValueError naming the config `field` and the allowed names."""
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"Unknown {field} {name!r}; choose one of {sorted(registry)}") from None


class Fusion(nn.Module, ABC):
    """Base class: ``forward(text, image) -> (B, output_dim)``."""

    output_dim: int

    @abstractmethod
    def forward(self, text: EncoderOutput, image: EncoderOutput) -> torch.Tensor:
        """Fuse the two modalities."""

"""The trunk every multimodal network here shares: text encoder, image encoder and fusion."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from mmrlhf.models.base import Encoder, count_tokens
from mmrlhf.models.config import ModelConfig
from mmrlhf.models.fusion import Fusion, build_fusion
from mmrlhf.models.image_encoders import build_image_encoder
from mmrlhf.models.spaces import ObservationLayout
from mmrlhf.models.text_encoders import build_text_encoder


def build_trunk(layout: ObservationLayout, cfg: ModelConfig) -> tuple[Encoder, Encoder, Fusion]:
    """Text encoder, image encoder and the fusion sized to their token counts.

    Used by the policy (`MultimodalModel`), the reward model and the SB3 baseline, so all three
    fuse the same way.
    """
    text = build_text_encoder(layout, cfg)
    image = build_image_encoder(layout, cfg)
    return text, image, build_fusion(cfg.embed_dim, cfg, count_tokens(text, image, layout))


F = TypeVar("F", bound=Callable[..., object])


def maybe_compile(fn: F, cfg: ModelConfig) -> F:
    """`torch.compile(fn)` (inductor, default mode) if `cfg.compile_trunk`, else `fn`.

    Compilation is lazy: it happens at the first call of each input shape and grad mode.
    """
    if not cfg.compile_trunk:
        return fn
    return torch.compile(fn)  # type: ignore[return-value]

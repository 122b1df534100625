"""The trunk every multimodal network here shares: text encoder, image encoder and fusion."""

from __future__ import annotations

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

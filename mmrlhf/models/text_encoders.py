"""Text encoders: token ids (B, L), 0 = padding, left-aligned -> :class:`EncoderOutput`.

Every encoder returns token features (B, L, D), the padding mask (B, L) and a pooled vector
(B, D), D = ``ModelConfig.embed_dim``. Pick one by name through :data:`TEXT_ENCODERS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from mmrlhf.models.base import Encoder, EncoderOutput, masked_mean, pick
from mmrlhf.models.config import ModelConfig
from mmrlhf.models.pretrained import load_pretrained
from mmrlhf.models.spaces import ObservationLayout

logger = logging.getLogger(__name__)

PAD_ID = 0


class TransformerTextEncoder(Encoder):
    """A small random-init Hugging Face ``BertModel`` sized to the env vocabulary.

    Padding (id 0) is excluded through BERT's attention mask; pooled = mean of real tokens.
    """

    def __init__(self, layout: ObservationLayout, cfg: ModelConfig) -> None:
        super().__init__(cfg.embed_dim)
        from transformers import BertConfig, BertModel

        bert_cfg = BertConfig(
            vocab_size=layout.vocab_size,
            hidden_size=cfg.embed_dim,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=2 * cfg.embed_dim,
            max_position_embeddings=layout.text_len,
            type_vocab_size=1,
            pad_token_id=PAD_ID,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        self.backbone = BertModel(bert_cfg, add_pooling_layer=False)
        self.proj = nn.Identity()

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        """Encode ids (B, L) into token features, mask and mean-pooled vector."""
        mask = ids != PAD_ID
        with self.backbone_grad():
            hidden = self.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        tokens = self.proj(hidden)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=masked_mean(tokens, mask))


class PretrainedTextEncoder(Encoder):
    """A local pretrained Hugging Face text model (``AutoModel``) plus a linear projection.

    The env's token ids must come from the model's own tokenizer; padding id 0 must be the
    model's pad token (true for BERT-family vocabularies such as MiniLM). Pooled = mean of the
    real tokens' features, as sentence-transformers does for MiniLM.
    """

    def __init__(self, layout: ObservationLayout, cfg: ModelConfig) -> None:
        super().__init__(cfg.embed_dim)
        assert cfg.pretrained_text_path is not None  # guaranteed by ModelConfig
        self.backbone, hf_cfg, path = load_pretrained(cfg.pretrained_text_path, "text")
        model_vocab = int(hf_cfg.vocab_size)
        if layout.vocab_size > model_vocab:
            raise ValueError(
                f"Observation text vocabulary ({layout.vocab_size}) is larger than the "
                f"pretrained model's ({model_vocab}) at {path}: tokenize with the model's own "
                "tokenizer (HFTokenizer on the same directory)"
            )
        if layout.vocab_size < model_vocab:
            logger.warning(
                "Observation vocabulary (%d) differs from the pretrained model's (%d): "
                "are the env's ids from the model's tokenizer?",
                layout.vocab_size,
                model_vocab,
            )
        max_positions = getattr(hf_cfg, "max_position_embeddings", None)
        if max_positions is not None and layout.text_len > int(max_positions):
            raise ValueError(
                f"Text length {layout.text_len} exceeds the pretrained model's "
                f"max_position_embeddings ({max_positions})"
            )
        self.proj = nn.Linear(int(hf_cfg.hidden_size), cfg.embed_dim)

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        """Encode ids (B, L) with the pretrained backbone, then project to embed_dim."""
        mask = ids != PAD_ID
        with self.backbone_grad():
            hidden = self.backbone(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        tokens = self.proj(hidden)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=masked_mean(tokens, mask))


class _GRUBackbone(nn.Module):
    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(ids))
        return out


class GRUTextEncoder(Encoder):
    """Embedding + one-layer GRU; pooled = the GRU output at the last real token.

    Text is left-aligned, so padding only follows the real tokens and cannot change their
    outputs. An all-padding text pools to zeros.
    """

    def __init__(self, layout: ObservationLayout, cfg: ModelConfig) -> None:
        super().__init__(cfg.embed_dim)
        self.backbone = _GRUBackbone(layout.vocab_size, cfg.embed_dim)
        self.proj = nn.Identity()

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        """Encode ids (B, L); pooled is the hidden state after the last real token."""
        mask = ids != PAD_ID
        with self.backbone_grad():
            hidden = self.backbone(ids)
        tokens = self.proj(hidden)
        lengths = mask.sum(dim=1)
        last = (lengths - 1).clamp(min=0)
        pooled = tokens[torch.arange(tokens.shape[0], device=tokens.device), last]
        pooled = pooled * (lengths > 0).unsqueeze(-1).to(pooled.dtype)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=pooled)


class BagTextEncoder(Encoder):
    """Bag of words: token embeddings, pooled = their mean over real tokens."""

    def __init__(self, layout: ObservationLayout, cfg: ModelConfig) -> None:
        super().__init__(cfg.embed_dim)
        self.backbone = nn.Embedding(layout.vocab_size, cfg.embed_dim, padding_idx=PAD_ID)
        self.proj = nn.Identity()

    def forward(self, ids: torch.Tensor) -> EncoderOutput:
        """Embed ids (B, L) and average the real tokens."""
        mask = ids != PAD_ID
        with self.backbone_grad():
            embedded = self.backbone(ids)
        tokens = self.proj(embedded)
        return EncoderOutput(tokens=tokens, mask=mask, pooled=masked_mean(tokens, mask))


TEXT_ENCODERS: dict[str, Callable[[ObservationLayout, ModelConfig], Encoder]] = {
    "transformer": TransformerTextEncoder,
    "pretrained": PretrainedTextEncoder,
    "gru": GRUTextEncoder,
    "bag": BagTextEncoder,
}


def build_text_encoder(layout: ObservationLayout, cfg: ModelConfig) -> Encoder:
    """Build the text encoder ``cfg.text_encoder`` (frozen if ``cfg.freeze_text``)."""
    factory = pick(TEXT_ENCODERS, cfg.text_encoder, "text_encoder")
    encoder = factory(layout, cfg)
    if cfg.freeze_text:
        encoder.freeze()
    return encoder

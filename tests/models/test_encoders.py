"""Text and image encoders: shapes, masks, padding, sizes, freezing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmrlhf.models import ModelConfig
from mmrlhf.models.base import TokenCounts, count_tokens
from mmrlhf.models.image_encoders import build_image_encoder
from mmrlhf.models.spaces import parse_observation_space
from mmrlhf.models.text_encoders import build_text_encoder
from tests.models.conftest import make_batch, make_obs_space

D = 32


def _cfg(**kwargs: object) -> ModelConfig:
    return ModelConfig(embed_dim=D, **kwargs)


def _text_cfg(kind: str, bert_dir: Path) -> ModelConfig:
    if kind == "pretrained":
        return _cfg(text_encoder="pretrained", pretrained_text_path=str(bert_dir))
    return _cfg(text_encoder=kind)


@pytest.mark.parametrize("kind", ["transformer", "pretrained", "gru", "bag"])
@pytest.mark.parametrize("length", [16, 40])
def test_text_encoder_shapes_and_mask(kind: str, length: int, tiny_bert_dir: Path) -> None:
    space = make_obs_space(length=length)
    encoder = build_text_encoder(parse_observation_space(space), _text_cfg(kind, tiny_bert_dir))
    ids = make_batch(space, batch_size=5)["obs"]["text"]
    out = encoder(ids)
    assert out.tokens.shape == (5, length, D)
    assert out.pooled.shape == (5, D)
    assert torch.equal(out.mask, ids != 0)
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()
    assert torch.all(out.pooled[0] == 0)  # row 0 is all padding


@pytest.mark.parametrize("kind", ["gru", "bag", "transformer"])
def test_text_pooling_ignores_padding(kind: str) -> None:
    """Padding after the real tokens does not change the pooled vector."""
    space = make_obs_space(length=12)
    torch.manual_seed(0)
    encoder = build_text_encoder(parse_observation_space(space), _cfg(text_encoder=kind))
    short = torch.tensor([[5, 9, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    longer = torch.tensor([[5, 9, 3, 7, 2, 0, 0, 0, 0, 0, 0, 0]])
    pooled_short = encoder(short).pooled
    # Same real tokens in a batch with a longer text: the padded row must not change.
    both = encoder(torch.cat([short, longer])).pooled
    torch.testing.assert_close(both[0], pooled_short[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(both[0], both[1])


@pytest.mark.parametrize("kind", ["cnn", "vit", "pretrained"])
@pytest.mark.parametrize(("h", "w"), [(64, 64), (50, 70)])
def test_image_encoder_shapes(kind: str, h: int, w: int, tiny_clip_vision_dir: Path) -> None:
    space = make_obs_space(h=h, w=w)
    path = str(tiny_clip_vision_dir) if kind == "pretrained" else None
    cfg = _cfg(image_encoder=kind, pretrained_image_path=path)
    encoder = build_image_encoder(parse_observation_space(space), cfg)
    out = encoder(make_batch(space, batch_size=3)["obs"]["image"])
    n_tokens = {"cnn": 16, "vit": 7 * 9 if (h, w) == (50, 70) else 64, "pretrained": 17}[kind]
    assert out.tokens.shape == (3, n_tokens, D)
    assert out.mask.shape == (3, n_tokens) and out.mask.all()
    assert out.pooled.shape == (3, D)
    assert torch.isfinite(out.tokens).all()
    # What sizes the attention maps: a dry run finds the same count for every encoder kind.
    layout = parse_observation_space(space)
    text = build_text_encoder(layout, cfg)
    factors = ("form", "color", "position") if kind == "cnn" else ()
    assert count_tokens(text, encoder, layout) == TokenCounts(layout.text_len, n_tokens, factors)


def test_images_are_scaled_inside_the_model() -> None:
    """uint8 and the same values as float give the same features (scaling happens inside)."""
    space = make_obs_space()
    encoder = build_image_encoder(parse_observation_space(space), _cfg())
    images = make_batch(space)["obs"]["image"]
    torch.testing.assert_close(encoder(images).pooled, encoder(images.float()).pooled)


def test_pretrained_image_uses_preprocessor_stats(tiny_clip_vision_dir: Path) -> None:
    space = make_obs_space()
    cfg = _cfg(image_encoder="pretrained", pretrained_image_path=str(tiny_clip_vision_dir))
    encoder = build_image_encoder(parse_observation_space(space), cfg)
    assert encoder.mean.flatten().tolist() == pytest.approx([0.48, 0.46, 0.41])
    assert encoder.std.flatten().tolist() == pytest.approx([0.27, 0.26, 0.28])
    assert encoder.size == (32, 32)


def test_two_tower_checkpoint_gives_each_tower(tiny_clip_dir: Path) -> None:
    layout = parse_observation_space(make_obs_space())
    text = build_text_encoder(
        layout, _cfg(text_encoder="pretrained", pretrained_text_path=str(tiny_clip_dir))
    )
    image = build_image_encoder(
        layout, _cfg(image_encoder="pretrained", pretrained_image_path=str(tiny_clip_dir))
    )
    assert type(text.backbone).__name__.startswith("CLIPText")
    assert type(image.backbone).__name__.startswith("CLIPVision")
    batch = make_batch(make_obs_space())["obs"]
    assert text(batch["text"]).pooled.shape == image(batch["image"]).pooled.shape == (4, D)


def test_pretrained_dropout_is_disabled(tiny_bert_dir: Path) -> None:
    """The saved model has dropout 0.3; train and eval passes must still agree."""
    layout = parse_observation_space(make_obs_space())
    encoder = build_text_encoder(layout, _text_cfg("pretrained", tiny_bert_dir))
    ids = make_batch(make_obs_space())["obs"]["text"]
    encoder.train()
    first, second = encoder(ids).tokens, encoder(ids).tokens
    encoder.eval()
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, encoder(ids).tokens)


def test_pretrained_vocab_smaller_than_observation_is_rejected(tiny_bert_dir: Path) -> None:
    layout = parse_observation_space(make_obs_space(vocab=500))
    with pytest.raises(ValueError, match="vocabulary"):
        build_text_encoder(layout, _text_cfg("pretrained", tiny_bert_dir))


def test_missing_pretrained_dir_is_a_clear_error(tmp_path: Path) -> None:
    layout = parse_observation_space(make_obs_space())
    cfg = _cfg(text_encoder="pretrained", pretrained_text_path=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        build_text_encoder(layout, cfg)


@pytest.mark.parametrize("modality", ["text", "image"])
def test_frozen_backbone_gets_no_gradient(modality: str, tiny_bert_dir: Path) -> None:
    space = make_obs_space()
    layout = parse_observation_space(space)
    obs = make_batch(space)["obs"]
    if modality == "text":
        cfg = _text_cfg("pretrained", tiny_bert_dir).model_copy(update={"freeze_text": True})
        encoder, x = build_text_encoder(layout, cfg), obs["text"]
    else:
        encoder, x = build_image_encoder(layout, _cfg(freeze_image=True)), obs["image"]
    assert not any(p.requires_grad for p in encoder.backbone.parameters())
    encoder.train()
    assert not encoder.backbone.training  # frozen backbones stay in eval mode
    out = encoder(x)
    (out.tokens.sum() + out.pooled.sum()).backward()
    assert all(p.grad is None for p in encoder.backbone.parameters())
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)


@pytest.mark.parametrize(("stride", "kernel"), [(2, 3), (4, 4), (8, 8)])
def test_cnn_stem_stride(stride: int, kernel: int) -> None:
    space = make_obs_space()
    encoder = build_image_encoder(parse_observation_space(space), _cfg(cnn_stem_stride=stride))
    stem = encoder.backbone["form"][0]
    assert stem.kernel_size == (kernel, kernel) and stem.stride == (stride, stride)
    out = encoder(make_batch(space, batch_size=2)["obs"]["image"])
    assert out.tokens.shape == (2, 16, D) and torch.isfinite(out.tokens).all()


def _one_object_images(colors: list[tuple[int, int, int]], shape_px: slice) -> torch.Tensor:
    """64x64 dark images, each with one square patch of the given colour."""
    images = torch.full((len(colors), 64, 64, 3), 24, dtype=torch.uint8)
    for i, rgb in enumerate(colors):
        images[i, shape_px, shape_px] = torch.tensor(rgb, dtype=torch.uint8)
    return images


def test_form_color_streams_split_colour_from_shape() -> None:
    """The form stream cannot tell two colours of equal brightness apart; the colour stream
    can, and the tokens (their sum) differ too."""
    torch.manual_seed(0)
    encoder = build_image_encoder(
        parse_observation_space(make_obs_space()), _cfg(cnn_streams="form_color")
    )
    # Same square, same max(R, G, B) = 200, different hues.
    images = _one_object_images([(200, 30, 30), (30, 200, 30)], slice(20, 36))
    pixels = images.permute(0, 3, 1, 2).float().div(255.0).sub(0.5).div(0.25)
    form = encoder.backbone["form"](pixels.amax(dim=1, keepdim=True))
    color = encoder.backbone["color"](pixels)
    torch.testing.assert_close(form[0], form[1])
    assert not torch.allclose(color[0], color[1])
    out = encoder(images)
    assert out.tokens.shape == (2, 16, D)
    assert not torch.allclose(out.tokens[0], out.tokens[1])
    # Gradients reach both streams.
    out.tokens.pow(2).sum().backward()
    for stream in ("form", "color"):
        assert all(p.grad is not None for p in encoder.backbone[stream].parameters())

"""Fusion modules: output sizes, the attention maths, weights and the joint space."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
import torch.nn.functional as F

from mmrlhf.models import ModelConfig
from mmrlhf.models.attention import (
    Attention,
    MultiHeadAttention,
    context_map,
    masked_weights,
    query_map,
)
from mmrlhf.models.base import EncoderOutput, TokenCounts
from mmrlhf.models.config import FusionKind
from mmrlhf.models.fusion import FUSIONS, build_fusion

D = 16
TOKENS = TokenCounts(text=5, image=4)  # what `_outputs` makes


def _outputs(batch: int = 3, t_text: int = 5, t_image: int = 4) -> tuple[EncoderOutput, ...]:
    gen = torch.Generator().manual_seed(0)
    text_tokens = torch.randn(batch, t_text, D, generator=gen)
    text_mask = torch.ones(batch, t_text, dtype=torch.bool)
    text_mask[0, 2:] = False
    text_mask[1, :] = False  # empty text
    image_tokens = torch.randn(batch, t_image, D, generator=gen)
    text = EncoderOutput(text_tokens, text_mask, torch.randn(batch, D, generator=gen))
    image = EncoderOutput(
        image_tokens, torch.ones(batch, t_image, dtype=torch.bool), image_tokens.mean(1)
    )
    return text, image


# 4 heads: each map has one feature per head and token it maps.
MAPS = {
    ("text_to_image", "context"): 4 * TOKENS.image,
    ("text_to_image", "query"): 4 * TOKENS.text,
    ("image_to_text", "context"): 4 * TOKENS.text,
    ("image_to_text", "query"): 4 * TOKENS.image,
}
EXPECTED_DIM = {
    "concat": 2 * D,
    "sum": D,
    "weighted": D,
    "cross_attention": 2 * D,
    "joint": 3 * D + 1,
    "factored_attention": D,
}


CONTEXT: tuple[str, ...] = ("context",)
CASES = [(name, "text_to_image", CONTEXT) for name in sorted(FUSIONS)] + [
    ("cross_attention", direction, maps)
    for direction in ("text_to_image", "image_to_text", "both")
    for maps in ((), ("query",), ("context", "query"))
] + [("factored_attention", "text_to_image", maps) for maps in ((), ("context", "query"))]


@pytest.mark.parametrize(("name", "direction", "maps"), CASES)
def test_output_dim(name: str, direction: str, maps: tuple[str, ...]) -> None:
    cfg = ModelConfig(
        embed_dim=D,
        fusion=name,
        num_heads=4,
        cross_attention_direction=direction,
        attention_maps=maps,
    )
    fusion = build_fusion(D, cfg, TOKENS)
    out = fusion(*_outputs())
    expected = EXPECTED_DIM[name]
    if name == "factored_attention":
        expected += sum(MAPS["text_to_image", m] for m in maps)
    if name == "cross_attention":
        directions = ("text_to_image", "image_to_text") if direction == "both" else (direction,)
        expected += sum(MAPS[d, m] for d in directions for m in maps)
    assert fusion.output_dim == expected
    assert out.shape == (3, fusion.output_dim)
    assert torch.isfinite(out).all()


def test_registry_covers_all_config_choices() -> None:
    assert set(FUSIONS) == set(get_args(FusionKind))


def test_attention_matches_scaled_dot_product_reference() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(D, num_heads=4)
    query, context = torch.randn(2, 3, D), torch.randn(2, 6, D)
    mask = torch.tensor([[True] * 6, [True, True, False, True, False, False]])
    heads = lambda x: x.view(2, -1, 4, D // 4).transpose(1, 2)  # noqa: E731
    q, k, v = heads(attn.q(query)), heads(attn.k(context)), heads(attn.v(context))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    expected = attn.out(ref.transpose(1, 2).reshape(2, 3, D))
    torch.testing.assert_close(attn(query, context, mask), expected, rtol=1e-5, atol=1e-5)


def test_masked_keys_have_no_influence_and_empty_context_is_finite() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(D, num_heads=2)
    query, context = torch.randn(1, 3, D), torch.randn(1, 5, D)
    mask = torch.tensor([[True, True, False, False, False]])
    changed = context.clone()
    changed[:, 2:] += 100.0
    torch.testing.assert_close(attn(query, context, mask), attn(query, changed, mask))
    out = attn(query, context, torch.zeros_like(mask))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, attn.out.bias.expand_as(out))


def test_weighted_fusion_is_a_learned_convex_combination() -> None:
    fusion = build_fusion(D, ModelConfig(embed_dim=D, fusion="weighted"), TOKENS)
    with torch.no_grad():
        fusion.logits.copy_(torch.tensor([0.0, 1.0]))
    text, image = _outputs()
    w = fusion.weights()
    assert w.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(fusion(text, image), w[0] * text.pooled + w[1] * image.pooled)
    fusion(text, image).sum().backward()
    assert fusion.logits.grad is not None and fusion.logits.grad.abs().sum() > 0


def test_joint_features_are_normalised_and_end_with_cosine() -> None:
    fusion = build_fusion(D, ModelConfig(embed_dim=D, fusion="joint"), TOKENS)
    out = fusion(*_outputs())
    zt, zi = out[:, :D], out[:, D : 2 * D]
    torch.testing.assert_close(zt.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(zi.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out[:, -1], F.cosine_similarity(zt, zi, dim=-1))


def test_cross_attention_uses_the_image_patches() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=D, fusion="cross_attention", num_heads=2, attention_maps=())
    fusion = build_fusion(D, cfg, TOKENS)
    text, image = _outputs()
    shuffled = EncoderOutput(image.tokens.flip(1) * 2, image.mask, image.pooled)
    before, after = fusion(text, image), fusion(text, shuffled)
    # Only the attended-text half changes (image pooled is the same); row 1 has no text.
    assert not torch.allclose(before[0, :D], after[0, :D])
    torch.testing.assert_close(before[:, D:], after[:, D:])


@pytest.mark.parametrize("gate", ["softmax", "sigmoid"])
def test_attention_gate_decides_whether_matches_add_up(gate: str) -> None:
    """Softmax weights sum to one, so two matching keys share what one gets; sigmoid gates
    each key on its own, so the weight grows with the number of matches (counting)."""
    low = -50.0
    keys = torch.ones(1, 4, dtype=torch.bool)
    _, one = masked_weights(torch.tensor([[[[5.0, low, low, low]]]]), keys, gate)
    _, two = masked_weights(torch.tensor([[[[5.0, 5.0, low, low]]]]), keys, gate)
    if gate == "softmax":
        torch.testing.assert_close(one.sum(-1), two.sum(-1))
        torch.testing.assert_close(two[..., 0], one[..., 0] / 2)
    else:
        torch.testing.assert_close(two.sum(-1), 2 * one.sum(-1))
        torch.testing.assert_close(two[..., 0], one[..., 0])


def test_sigmoid_gate_starts_at_the_scale_of_a_mean_over_the_real_keys() -> None:
    keys = torch.tensor([[True, True, True, True, False]])  # 4 real keys, 1 padding
    _, weights = masked_weights(torch.zeros(1, 1, 1, 5), keys, "sigmoid")
    # sigmoid(0 - log 4) = 1 / (1 + 4), near softmax's uniform 1/4; a bare sigmoid gives every
    # key 1/2, an output n / 2 times the mean of n keys' values
    torch.testing.assert_close(weights, torch.tensor([[[[0.2, 0.2, 0.2, 0.2, 0.0]]]]))


def test_context_map_averages_the_weights_over_real_queries() -> None:
    weights = torch.tensor([[[[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]]]])  # (B=1, h=1, Tq=3, Tk=2)
    attention = Attention(torch.zeros(1, 3, D), weights, torch.zeros_like(weights))
    query_mask = torch.tensor([[True, True, False]])  # the third query is padding
    torch.testing.assert_close(context_map(attention, query_mask), torch.tensor([[0.45, 0.55]]))
    empty = context_map(attention, torch.zeros_like(query_mask))
    torch.testing.assert_close(empty, torch.zeros(1, 2))


def test_query_map_is_each_real_querys_best_score_over_real_keys() -> None:
    scores = torch.tensor([[[[1.0, -2.0, 7.0], [0.5, 3.0, 8.0], [9.0, 9.0, 9.0]]]])
    attention = Attention(torch.zeros(1, 3, D), torch.zeros_like(scores), scores)
    query_mask = torch.tensor([[True, True, False]])
    key_mask = torch.tensor([[True, True, False]])  # the 7 and 8 are on a padding key
    torch.testing.assert_close(
        query_map(attention, query_mask, key_mask), torch.tensor([[1.0, 3.0, 0.0]])
    )
    no_keys = query_map(attention, query_mask, torch.zeros_like(key_mask))
    torch.testing.assert_close(no_keys, torch.zeros(1, 3))


@pytest.mark.parametrize("direction", ["text_to_image", "both"])
def test_attention_maps_follow_the_image_patches(direction: str) -> None:
    """Moving the image patches moves their map with them: the map says *where*."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        embed_dim=D, fusion="cross_attention", num_heads=2, cross_attention_direction=direction
    )
    fusion = build_fusion(D, cfg, TOKENS)
    text, image = _outputs()
    order = torch.tensor([2, 0, 3, 1])
    moved = EncoderOutput(image.tokens[:, order], image.mask, image.pooled)
    heads, t_image = 2, TOKENS.image
    maps = fusion(text, image)[:, D : D + heads * t_image].view(3, heads, t_image)
    moved_maps = fusion(text, moved)[:, D : D + heads * t_image].view(3, heads, t_image)
    torch.testing.assert_close(moved_maps, maps[..., order])
    assert not torch.allclose(maps[0], maps[0, :, order])
    if direction == "both":  # the text map averages over the patches: their order is moot
        text_map = slice(2 * D + heads * t_image, None)
        before, after = fusion(text, image)[:, text_map], fusion(text, moved)[:, text_map]
        torch.testing.assert_close(after, before)

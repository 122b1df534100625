"""Factored attention: keys match the factors the key gate opens, values read the factors the
value gate picks, position is read but never matched, and the CNN exposes its factors."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from mmrlhf.envs import EnvConfig, MyMultimodalEnv
from mmrlhf.models import ModelConfig
from mmrlhf.models.base import EncoderOutput, TokenCounts
from mmrlhf.models.factored_attention import FactoredAttention, FactoredAttentionFusion
from mmrlhf.models.image_encoders import CNNImageEncoder
from mmrlhf.models.spaces import parse_observation_space

D, HEADS, TQ, TK = 8, 2, 3, 4
FACTORS = ("form", "color", "position")


def _factors(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "form": torch.randn(2, TK, D, generator=gen),
        "color": torch.randn(2, TK, D, generator=gen),
        "position": torch.randn(1, TK, D, generator=gen),
    }


def _force_gate(layer: torch.nn.Linear, pick: int, n_factors: int) -> None:
    """Make a gate layer ignore the query and favour factor `pick` in every head."""
    with torch.no_grad():
        layer.weight.zero_()
        bias = torch.full((HEADS, n_factors), -30.0)
        bias[:, pick] = 30.0
        layer.bias.copy_(bias.flatten())


def _attention() -> FactoredAttention:
    torch.manual_seed(0)
    return FactoredAttention(D, HEADS, FACTORS)


def test_position_is_a_value_but_never_a_key() -> None:
    attention = _attention()
    assert attention.key_factors == ("form", "color")
    assert attention.value_factors == FACTORS
    query, factors, mask = torch.randn(2, TQ, D), _factors(), torch.ones(2, TK, dtype=torch.bool)
    moved = {**factors, "position": factors["position"] * 5 + 1}
    before, after = attention.attend(query, factors, mask), attention.attend(query, moved, mask)
    torch.testing.assert_close(before.weights, after.weights)
    assert not torch.allclose(before.output, after.output)


def test_value_gate_reads_one_factor_alone() -> None:
    attention = _attention()
    _force_gate(attention.value_gate, FACTORS.index("color"), len(FACTORS))
    _force_gate(attention.key_gate, 0, 2)  # match on form only, so weights ignore colour
    query, factors, mask = torch.randn(2, TQ, D), _factors(), torch.ones(2, TK, dtype=torch.bool)
    out = attention.attend(query, factors, mask).output
    other_form = {**factors, "form": factors["form"].roll(1, dims=0)}
    other_color = {**factors, "color": _factors(1)["color"]}
    # A new form moves where the queries look, so the read colour changes; a new colour at
    # the same places changes the read too; a new position (not read) changes nothing.
    assert not torch.allclose(attention.attend(query, other_form, mask).output, out)
    assert not torch.allclose(attention.attend(query, other_color, mask).output, out)
    same_place = {**factors, "position": torch.zeros(1, TK, D)}
    torch.testing.assert_close(attention.attend(query, same_place, mask).output, out)


def test_key_gate_closed_on_a_factor_makes_it_unmatched() -> None:
    attention = _attention()
    _force_gate(attention.key_gate, FACTORS.index("form"), 2)
    query, factors, mask = torch.randn(2, TQ, D), _factors(), torch.ones(2, TK, dtype=torch.bool)
    weights = attention.attend(query, factors, mask).weights
    recoloured = {**factors, "color": _factors(7)["color"]}
    torch.testing.assert_close(attention.attend(query, recoloured, mask).weights, weights)
    reshaped = {**factors, "form": _factors(7)["form"]}
    assert not torch.allclose(attention.attend(query, reshaped, mask).weights, weights)


def test_masked_patches_get_no_weight() -> None:
    attention = _attention()
    query, factors = torch.randn(2, TQ, D), _factors()
    mask = torch.tensor([[True, True, False, False]] * 2)
    out = attention.attend(query, factors, mask)
    assert torch.all(out.weights[..., 2:] == 0)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(2, HEADS, TQ))
    changed = {k: v.clone() for k, v in factors.items()}
    changed["form"][:, 2:] += 100.0
    torch.testing.assert_close(attention.attend(query, changed, mask).output, out.output)


def test_wrong_factors_are_refused_by_name() -> None:
    attention = _attention()
    factors = _factors()
    del factors["color"]
    with pytest.raises(ValueError, match=r"built for image factors \['form', 'color'"):
        attention.attend(torch.randn(2, TQ, D), factors, torch.ones(2, TK, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one content factor"):
        FactoredAttention(D, HEADS, ("position",))


def _fusion(**kwargs: object) -> FactoredAttentionFusion:
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=D, num_heads=HEADS, fusion="factored_attention", **kwargs)
    return FactoredAttentionFusion(D, cfg, TokenCounts(text=TQ, image=TK, image_factors=FACTORS))


def _text(mask_last: bool = True) -> EncoderOutput:
    tokens = torch.randn(2, TQ, D, generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, TQ, dtype=torch.bool)
    if mask_last:
        mask[0, -1] = False
    return EncoderOutput(tokens, mask, tokens.mean(1))


def _image(factors: dict[str, torch.Tensor]) -> EncoderOutput:
    tokens = factors["form"] + factors["color"] + factors["position"]
    return EncoderOutput(tokens, torch.ones(2, TK, dtype=torch.bool), tokens.mean(1), factors)


def test_fusion_output_is_the_pooled_read_then_the_maps() -> None:
    fusion = _fusion(attention_maps=("context",))
    text, image = _text(), _image(_factors())
    out = fusion(text, image)
    assert out.shape == (2, D + HEADS * TK) and fusion.output_dim == D + HEADS * TK
    attention = fusion.attention.attend(text.tokens, image.factors or {}, image.mask)
    read = fusion.norm(attention.output)
    expected_row0 = read[0, :2].mean(0)  # the padding query is left out
    torch.testing.assert_close(out[0, :D], expected_row0)
    # The pooled image vector is not part of the features: only what was read is.
    other_pooled = EncoderOutput(image.tokens, image.mask, image.pooled * 0 + 9, image.factors)
    torch.testing.assert_close(fusion(text, other_pooled), out)


def test_residual_adds_the_text_tokens_to_what_they_read() -> None:
    plain, residual = _fusion(attention_maps=()), _fusion(attention_maps=(), factored_residual=True)
    residual.load_state_dict(plain.state_dict())
    text, image = _text(mask_last=False), _image(_factors())
    read = plain.attention.attend(text.tokens, image.factors or {}, image.mask).output
    torch.testing.assert_close(residual(text, image), plain.norm(text.tokens + read).mean(1))
    assert not torch.allclose(residual(text, image), plain(text, image))


def test_encoders_without_factors_attend_over_their_tokens() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=D, num_heads=HEADS, fusion="factored_attention")
    fusion = FactoredAttentionFusion(D, cfg, TokenCounts(text=TQ, image=TK))
    assert fusion.attention.value_factors == ("content",)
    tokens = torch.randn(2, TK, D)
    image = EncoderOutput(tokens, torch.ones(2, TK, dtype=torch.bool), tokens.mean(1))
    assert fusion(_text(), image).shape == (2, fusion.output_dim)


@pytest.mark.parametrize("streams", ["form_color", "rgb"])
def test_cnn_factors_add_up_to_its_tokens(streams: str) -> None:
    env = MyMultimodalEnv(EnvConfig(task="vqa"))
    obs, _ = env.reset(seed=0)
    encoder = CNNImageEncoder(
        parse_observation_space(env.observation_space), ModelConfig(cnn_streams=streams)
    )
    out = encoder(torch.from_numpy(obs["image"])[None])
    assert out.factors is not None
    names = ("form", "color", "position") if streams == "form_color" else ("content", "position")
    assert tuple(out.factors) == names
    content = sum(v for k, v in out.factors.items() if k != "position")
    assert isinstance(content, torch.Tensor)
    torch.testing.assert_close(out.tokens, encoder.proj(content) + out.factors["position"])


def test_other_directions_are_refused() -> None:
    with pytest.raises(ValidationError, match="text_to_image only"):
        ModelConfig(fusion="factored_attention", cross_attention_direction="both")

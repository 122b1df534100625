"""MultimodalModel as an RLModule: forward passes, values, gradients, spaces, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import gymnasium as gym
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from mmrlhf.models import ModelConfig, MultimodalModel
from mmrlhf.models.config import FusionKind
from mmrlhf.models.multimodal import IMAGE_EMBEDDINGS, TEXT_EMBEDDINGS
from tests.models.conftest import N_ACTIONS, make_batch, make_obs_space

TEXT_KINDS = ["transformer", "pretrained", "gru", "bag"]
FUSION_KINDS = list(get_args(FusionKind))


def build(
    space: gym.spaces.Dict | None = None,
    inference_only: bool = False,
    **kwargs: Any,
) -> MultimodalModel:
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=32, hidden_sizes=(32,), **kwargs)
    return MultimodalModel(
        observation_space=space or make_obs_space(),
        action_space=gym.spaces.Discrete(N_ACTIONS),
        inference_only=inference_only,
        model_config=cfg.to_rllib(),
    )


def _pretrained_kwargs(text: str, image: str, bert: Path, clip: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"text_encoder": text, "image_encoder": image}
    if text == "pretrained":
        kwargs["pretrained_text_path"] = str(bert)
    if image == "pretrained":
        kwargs["pretrained_image_path"] = str(clip)
    return kwargs


def _check_forward_passes(model: MultimodalModel, batch: dict[str, Any]) -> None:
    b = batch[Columns.OBS]["text"].shape[0]
    for out in (model.forward_inference(batch), model.forward_exploration(batch)):
        assert out[Columns.ACTION_DIST_INPUTS].shape == (b, N_ACTIONS)
    train = model.forward_train(batch)
    logits = train[Columns.ACTION_DIST_INPUTS]
    assert logits.shape == (b, N_ACTIONS) and torch.isfinite(logits).all()
    assert train[Columns.EMBEDDINGS].shape[0] == b
    assert train[IMAGE_EMBEDDINGS].shape == train[TEXT_EMBEDDINGS].shape == (b, 32)
    values = model.compute_values(batch, embeddings=train[Columns.EMBEDDINGS])
    assert values.shape == (b,)
    torch.testing.assert_close(values, model.compute_values(batch))
    # No dropout / batch norm: sampling (eval) and training passes agree, as PPO assumes.
    torch.testing.assert_close(model.forward_exploration(batch)[Columns.ACTION_DIST_INPUTS], logits)


@pytest.mark.parametrize("text", TEXT_KINDS)
@pytest.mark.parametrize("fusion", FUSION_KINDS)
def test_forward_shapes_text_x_fusion(
    text: str, fusion: str, batch: dict[str, Any], tiny_bert_dir: Path
) -> None:
    kwargs = _pretrained_kwargs(text, "cnn", tiny_bert_dir, Path())
    _check_forward_passes(build(fusion=fusion, **kwargs), batch)


@pytest.mark.parametrize("image", ["cnn", "vit", "pretrained"])
@pytest.mark.parametrize("fusion", ["concat", "cross_attention", "factored_attention"])
def test_forward_shapes_per_image_encoder(
    image: str, fusion: str, batch: dict[str, Any], tiny_clip_vision_dir: Path
) -> None:
    kwargs = _pretrained_kwargs("transformer", image, Path(), tiny_clip_vision_dir)
    _check_forward_passes(build(fusion=fusion, **kwargs), batch)


@pytest.mark.parametrize(("h", "w", "length"), [(48, 80, 16), (64, 64, 96)])
def test_other_image_sizes_and_longer_texts(h: int, w: int, length: int) -> None:
    space = make_obs_space(h=h, w=w, length=length)
    for image in ("cnn", "vit"):
        model = build(space, image_encoder=image, fusion="cross_attention")
        _check_forward_passes(model, make_batch(space, batch_size=3))


def test_separate_value_trunk(batch: dict[str, Any]) -> None:
    model = build(share_encoders=False)
    assert hasattr(model, "value_encoder")
    train = model.forward_train(batch)
    values = model.compute_values(batch, embeddings=train[Columns.EMBEDDINGS])
    torch.testing.assert_close(values, model.compute_values(batch))
    # The value loss trains the value trunk, not the policy encoders.
    values.sum().backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert any(p.grad is not None for p in model.value_encoder["text_encoder"].parameters())


def test_inference_only_module_drops_value_trunk_and_loads_learner_weights(
    batch: dict[str, Any],
) -> None:
    learner_module = build(share_encoders=False)
    runner_module = build(share_encoders=False, inference_only=True)
    assert not hasattr(runner_module, "value_encoder")
    # What the Learner ships to EnvRunners: no value trunk, and every key the runner needs.
    state = learner_module.get_state(inference_only=True)
    assert not any(k.startswith("value_encoder") for k in state)
    assert set(state) == set(runner_module.state_dict())
    runner_module.set_state(state)
    torch.testing.assert_close(
        runner_module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
        learner_module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
    )
    with pytest.raises(RuntimeError, match="inference-only"):
        runner_module.compute_values(batch)


@pytest.mark.parametrize("fusion", FUSION_KINDS)
def test_gradients_reach_both_encoders(fusion: str, batch: dict[str, Any]) -> None:
    model = build(fusion=fusion)
    out = model.forward_train(batch)
    loss = (
        out[Columns.ACTION_DIST_INPUTS].pow(2).sum()
        + model.compute_values(batch, out[Columns.EMBEDDINGS]).sum()
    )
    loss.backward()
    for part in (model.text_encoder, model.image_encoder):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), type(part).__name__


@pytest.mark.parametrize("frozen", ["text", "image"])
def test_frozen_encoder_gets_no_gradient(
    frozen: str, batch: dict[str, Any], tiny_bert_dir: Path, tiny_clip_vision_dir: Path
) -> None:
    model = build(
        fusion="cross_attention",
        freeze_text=frozen == "text",
        freeze_image=frozen == "image",
        **_pretrained_kwargs("pretrained", "pretrained", tiny_bert_dir, tiny_clip_vision_dir),
    )
    out = model.forward_train(batch)
    (out[Columns.ACTION_DIST_INPUTS].sum() + out[Columns.EMBEDDINGS].sum()).backward()
    frozen_enc = model.text_encoder if frozen == "text" else model.image_encoder
    other = model.image_encoder if frozen == "text" else model.text_encoder
    assert all(p.grad is None for p in frozen_enc.backbone.parameters())
    assert frozen_enc.proj.weight.grad is not None  # the projection still adapts
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in other.backbone.parameters())


BAD_SPACES = {
    "not a dict": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
    "missing text": gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)}),
    "float image": gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 1, (64, 64, 3), np.float32),
            "text": gym.spaces.Box(0, 59, (16,), np.int64),
        }
    ),
    "channels first": gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (3, 64, 64), np.uint8),
            "text": gym.spaces.Box(0, 59, (16,), np.int64),
        }
    ),
    "float text": gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "text": gym.spaces.Box(0, 1, (16,), np.float32),
        }
    ),
    "2-d text": gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "text": gym.spaces.Box(0, 59, (4, 16), np.int64),
        }
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SPACES))
def test_wrong_observation_space_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError) as info:
        build(BAD_SPACES[name])
    message = str(info.value)
    assert "Dict(image=Box(0, 255, (H, W, 3), uint8)" in message
    assert "text=Box(0, V-1, (L,), int64)" in message


def test_wrong_action_space_and_bad_model_config_are_errors() -> None:
    with pytest.raises(ValueError, match="Discrete"):
        MultimodalModel(
            observation_space=make_obs_space(),
            action_space=gym.spaces.Box(-1, 1, (2,)),
            model_config={},
        )
    with pytest.raises(ValidationError, match="fusion"):
        MultimodalModel(
            observation_space=make_obs_space(),
            action_space=gym.spaces.Discrete(3),
            model_config={"fusion": "multiply"},
        )


def test_parameter_counts_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="mmrlhf.models.multimodal"):
        build()
    message = " ".join(r.getMessage() for r in caplog.records)
    for part in ("text_encoder=", "image_encoder=", "fusion=", "output="):
        assert part in message


@pytest.mark.parametrize("kwargs", [{}, {"fusion": "joint", "share_encoders": False}])
def test_checkpoint_round_trip_gives_identical_logits(
    kwargs: dict[str, Any], batch: dict[str, Any], tmp_path: Path
) -> None:
    model = build(**kwargs)
    with torch.no_grad():  # move away from the init so a fresh build would differ
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_to_path(tmp_path / "module")
    restored = RLModule.from_checkpoint(tmp_path / "module")
    assert isinstance(restored, MultimodalModel)
    assert restored.mm_config == model.mm_config
    expected = model.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    torch.testing.assert_close(
        restored.forward_inference(batch)[Columns.ACTION_DIST_INPUTS], expected, rtol=0, atol=0
    )
    torch.testing.assert_close(restored.compute_values(batch), model.compute_values(batch))
    fresh = build(**kwargs).forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    assert not torch.allclose(fresh, expected)

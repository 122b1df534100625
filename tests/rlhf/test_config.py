"""RLHF fields of FeedbackConfig: dotted overrides, validation, the KL wiring, KL by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import get_args

import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig

from mmrlhf.callbacks import apply_feedback
from mmrlhf.config import ConfigError, load_config
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.rlhf import spec_for_sample
from mmrlhf.models import MultimodalPPOLearner
from mmrlhf.models.learner import KL_COEFF_CONFIG, KL_REFERENCE_CONFIG, categorical_kl
from tests.rlhf.conftest import IMAGE, PROMPT_LEN, TINY_RM, make_sample


def test_dotted_overrides_reach_the_rlhf_fields() -> None:
    cfg = load_config(
        "configs/rlhf_vqa.yaml",
        # rlhf_vqa.yaml's floor rotation refuses other query modes: turned off with them
        ["feedback.query_challenger_scenes=random", "feedback.query_give_up_rounds=1",
         "feedback.query_confirmations=1",
         "feedback.source=reward_model", "feedback.query_mode=random", "feedback.query_k=4",
         "feedback.rm_ensemble=5", "feedback.kl_coeff=0.1", "feedback.rm_cnn_channels=[8, 16]",
         "feedback.rm_fusion=factored_attention", "feedback.rm_attention_gate=sigmoid",
         "feedback.rm_factored_residual=true"],
    )  # fmt: skip
    fb = cfg.feedback
    assert fb.source == "reward_model" and fb.query_mode == "random" and fb.query_k == 4
    assert fb.rm_ensemble == 5 and fb.kl_coeff == 0.1
    rm_model = fb.rm_model_config()
    assert rm_model.cnn_channels == (8, 16)
    assert rm_model.fusion == "factored_attention" and rm_model.attention_gate == "sigmoid"
    assert rm_model.factored_residual
    assert load_config(None).feedback.source == "rater"  # the default is unchanged
    with pytest.raises(ConfigError, match="query_challenger_scenes='kinds' acts on the floor"):
        load_config("configs/rlhf_vqa.yaml", ["feedback.query_mode=random"])


def test_bad_rlhf_values_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ConfigError, match="source"):
        load_config(None, ["feedback.source=humans"])
    with pytest.raises(ConfigError, match="query_k"):
        load_config(None, ["feedback.query_k=1"])
    with pytest.raises(ValueError, match="rm_cnn_channels"):
        FeedbackConfig(source="reward_model", rm_cnn_channels=[8, 0])
    with pytest.raises(ValueError, match="rm_text_encoder"):
        FeedbackConfig(source="reward_model", rm_text_encoder="pretrained")


def test_apply_feedback_passes_the_kl_settings_to_the_learner() -> None:
    config = PPOConfig().learners(learner_class=MultimodalPPOLearner)
    apply_feedback(config, FeedbackConfig(kl_coeff=0.2, kl_reference="ckpt"))
    assert config.learner_config_dict[KL_COEFF_CONFIG] == 0.2
    assert config.learner_config_dict[KL_REFERENCE_CONFIG] == "ckpt"
    off = apply_feedback(PPOConfig(), FeedbackConfig())
    assert KL_COEFF_CONFIG not in off.learner_config_dict


def test_categorical_kl_by_hand() -> None:
    p = torch.tensor([[0.0, math.log(3.0)]])  # probabilities 1/4, 3/4
    q = torch.zeros(1, 2)  # 1/2, 1/2
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert categorical_kl(p, q).item() == pytest.approx(expected)
    assert categorical_kl(q, q).item() == pytest.approx(0.0)


def test_reward_model_choices_are_the_models_own() -> None:
    """The feedback config spells the reward model's kinds out (to stay cheap to import);
    each must still be a `ModelConfig` kind, and every fusion must be offered."""
    from mmrlhf.feedback.config import RMAttentionGate, RMFusion, RMImageEncoder, RMTextEncoder
    from mmrlhf.models.config import (
        AttentionGate,
        FusionKind,
        ImageEncoderKind,
        TextEncoderKind,
    )

    assert set(get_args(RMFusion)) == set(get_args(FusionKind))
    assert set(get_args(RMAttentionGate)) == set(get_args(AttentionGate))
    assert set(get_args(RMImageEncoder)) <= set(get_args(ImageEncoderKind))
    assert set(get_args(RMTextEncoder)) <= set(get_args(TextEncoderKind))


def test_the_spec_takes_the_sizes_of_a_sample_and_needs_square_images() -> None:
    cfg = FeedbackConfig(source="reward_model", **TINY_RM)
    sample = make_sample("a")
    spec = spec_for_sample(cfg, sample, vocab_size=20)
    assert (spec.image_size, spec.prompt_len, spec.vocab_size) == (IMAGE, PROMPT_LEN, 20)
    wide = dataclasses.replace(sample, image=sample.image[:, :-2])
    with pytest.raises(ValueError, match="square images, got 16x14"):
        spec_for_sample(cfg, wide, vocab_size=20)

"""FeedbackConfig: defaults, validation messages that name the field and the allowed values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mmrlhf.feedback.config import FeedbackConfig


def test_defaults_are_off_and_unlimited() -> None:
    cfg = FeedbackConfig()
    assert not cfg.enabled and cfg.rater == "oracle"
    assert cfg.label_budget is None and cfg.rate_fraction == 1.0 and not cfg.use_hub


def test_flat_fields_from_dotted_overrides() -> None:
    # what a `feedback.rater=noisy feedback.sigma=0.5` override parser produces
    cfg = FeedbackConfig.model_validate({"enabled": "true", "rater": "noisy", "sigma": "0.5"})
    assert cfg.enabled and cfg.rater == "noisy" and cfg.sigma == 0.5


def test_unknown_rater_names_field_and_allowed() -> None:
    with pytest.raises(ValidationError) as err:
        FeedbackConfig(rater="psychic")
    text = str(err.value)
    assert "rater" in text and "psychic" in text and "oracle" in text and "panel" in text


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="sigmaa"):
        FeedbackConfig(sigmaa=0.1)


def test_bad_aggregate_lists_allowed_values() -> None:
    with pytest.raises(ValidationError) as err:
        FeedbackConfig(aggregate="median")
    assert "aggregate" in str(err.value) and "'mean'" in str(err.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_fraction", 0.0),
        ("rate_fraction", 1.5),
        ("label_budget", -1),
        ("epsilon", 1.5),
        ("skip_prob", -0.1),
        ("sigma", -0.1),
        ("gamma", 2.0),
        ("hub_block", 0),
        ("seed", -1),
        ("panel_sigmas", []),
        ("panel_sigmas", [0.1, -0.2]),
    ],
)
def test_out_of_range_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        FeedbackConfig(**{field: value})


def test_cross_field_ranges() -> None:
    with pytest.raises(ValidationError, match="click_low"):
        FeedbackConfig(click_low=0.9, click_high=0.1)
    with pytest.raises(ValidationError, match="dwell_min_s"):
        FeedbackConfig(dwell_min_s=40.0)


def test_frozen_and_hub_name_per_trial() -> None:
    cfg = FeedbackConfig(hub_name="hub")
    with pytest.raises(ValidationError):
        cfg.sigma = 0.3  # type: ignore[misc]
    assert cfg.hub_actor_name() == "hub-default"
    assert cfg.hub_actor_name("abc_00001") == "hub-abc_00001"

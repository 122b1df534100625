"""`FeedbackConfig`: every feedback option, flat and validated (the `feedback:` config section).

Fields are flat scalars (plus one list) so a dotted override such as `feedback.rater=noisy` or
`feedback.sigma=0.5` maps to exactly one field. Each rater reads only the fields it needs; see
`mmrlhf.feedback.raters` for which.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmrlhf.feedback.raters import RATERS, Rater, make_rater, rater_seed


class FeedbackConfig(BaseModel):
    """Episode-end feedback: who rates, how the label becomes reward, how many labels.

    Reward written to the episode: every env reward is multiplied by `env_weight`; when the
    episode gets a label, `feedback_weight * label.reward` (label.reward in [0, 1]) is added to
    its last step.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Turn feedback on; off = metrics only.")
    rater: str = Field("oracle", description="Registered rater name (see raters.RATERS).")
    seed: int = Field(0, ge=0, description="Feedback seed; each EnvRunner derives its own.")

    # Reward shaping.
    env_weight: float = Field(1.0, description="Multiplier on the env's own rewards.")
    feedback_weight: float = Field(1.0, description="Multiplier on the feedback reward.")

    # Which episodes get rated.
    rate_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Probability that an episode is sent to the rater."
    )
    label_budget: int | None = Field(
        None,
        ge=0,
        description="Labels allowed in all (None = unlimited). Global with use_hub, "
        "otherwise per EnvRunner.",
    )

    # Shared state across EnvRunners.
    use_hub: bool = Field(False, description="Share budget and label log via a FeedbackHub.")
    hub_name: str = Field(
        "mmrlhf-feedback",
        min_length=1,
        description="Ray actor name of the hub; the Tune trial id is appended.",
    )
    hub_block: int = Field(32, ge=1, description="Labels an EnvRunner reserves per hub round trip.")

    # Rater parameters (each rater reads only its own; see mmrlhf.feedback.raters).
    sigma: float = Field(0.1, ge=0.0, description="Gaussian noise std (noisy, rating).")
    epsilon: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Label flip probability (noisy, mistake, panel). None: 0.1 for mistake, "
        "else 0.",
    )
    skip_prob: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Probability of no label, any rater. None: 0.2 for skip, else 0.",
    )
    gamma: float = Field(0.9, ge=0.0, le=1.0, description="Step-score discount (myopic).")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Thumbs-up threshold (binary).")
    rating_levels: int = Field(5, ge=2, le=100, description="Stars on the scale (rating).")
    click_low: float = Field(0.05, ge=0.0, le=1.0, description="P(click) at score 0 (click).")
    click_high: float = Field(0.95, ge=0.0, le=1.0, description="P(click) at score 1 (click).")
    dwell_min_s: float = Field(2.0, ge=0.0, description="Mean dwell seconds at score 0 (dwell).")
    dwell_max_s: float = Field(30.0, gt=0.0, description="Mean dwell seconds at score 1 (dwell).")
    dwell_noise: float = Field(0.3, ge=0.0, description="Log-normal dwell noise (dwell).")
    panel_sigmas: list[float] = Field(
        default_factory=lambda: [0.1, 0.2, 0.3],
        min_length=1,
        description="Noise std of each panel member (panel).",
    )
    aggregate: Literal["mean", "majority"] = Field("mean", description="Panel aggregation.")

    @field_validator("rater")
    @classmethod
    def _known_rater(cls, value: str) -> str:
        if value not in RATERS:
            raise ValueError(f"unknown rater {value!r}; allowed: {', '.join(sorted(RATERS))}")
        return value

    @field_validator("panel_sigmas")
    @classmethod
    def _non_negative_sigmas(cls, value: list[float]) -> list[float]:
        if any(s < 0 for s in value):
            raise ValueError(f"every panel sigma must be >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _ordered_ranges(self) -> FeedbackConfig:
        if self.click_low > self.click_high:
            raise ValueError(
                f"click_low ({self.click_low}) must be <= click_high ({self.click_high})"
            )
        if self.dwell_min_s >= self.dwell_max_s:
            raise ValueError(
                f"dwell_min_s ({self.dwell_min_s}) must be < dwell_max_s ({self.dwell_max_s})"
            )
        return self

    def make_rater(self, stream: int = 0) -> Rater:
        """Build this config's rater for one stream (EnvRunner index; -1 = none)."""
        return make_rater(self.rater, self, rater_seed(self.seed, stream))

    def hub_actor_name(self, trial_id: str | None = None) -> str:
        """Ray actor name of the hub for one Tune trial ("default" outside Tune)."""
        return f"{self.hub_name}-{trial_id or 'default'}"

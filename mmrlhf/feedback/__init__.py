"""Episode-end feedback, in plain Python (no RLlib): records, raters, budget, config, engine.

The Ray actor that shares state between EnvRunners lives in `mmrlhf.feedback.hub`.
"""

from mmrlhf.feedback.budget import LabelAllowance, LabelBudget
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.feedback.engine import FeedbackEngine, FeedbackOutcome, shape_rewards
from mmrlhf.feedback.raters import RATERS, Rater, agrees, make_rater, register_rater
from mmrlhf.feedback.records import EpisodeRecord, Label

__all__ = [
    "RATERS",
    "EpisodeRecord",
    "FeedbackConfig",
    "FeedbackEngine",
    "FeedbackOutcome",
    "Label",
    "LabelAllowance",
    "LabelBudget",
    "Rater",
    "agrees",
    "make_rater",
    "register_rater",
    "shape_rewards",
]

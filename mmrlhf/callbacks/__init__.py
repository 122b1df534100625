"""Thin RLlib adapters for mmrlhf: episode-end feedback and task metrics."""

from mmrlhf.callbacks.apply import apply_feedback
from mmrlhf.callbacks.feedback import FeedbackCallback, make_feedback_callback

__all__ = ["FeedbackCallback", "apply_feedback", "make_feedback_callback"]

"""Which episodes an EnvRunner sends to the reward-model hub."""

from __future__ import annotations

from mmrlhf.callbacks.reward_model import RewardModelFeedback
from mmrlhf.envs.tokenizer import WordTokenizer
from mmrlhf.feedback.config import FeedbackConfig
from tests.rlhf.conftest import make_sample


def feedback(fraction: float, seed: int = 0) -> RewardModelFeedback:
    config = FeedbackConfig(
        enabled=True, source="reward_model", rm_send_fraction=fraction, seed=seed
    )
    return RewardModelFeedback(config, hub=None, runner_id=0, tokenizer=WordTokenizer(["a"]))


def test_sends_a_fraction_of_scenes_with_all_their_answers() -> None:
    half = feedback(0.5)
    scenes = [[make_sample(f"s{i}-{r}", seed=i, response=3 + r) for r in range(3)]
              for i in range(400)]  # fmt: skip
    sent = [[half._sends(s) for s in answers] for answers in scenes]
    assert all(len(set(flags)) == 1 for flags in sent)  # a scene goes whole or not at all
    assert 160 <= sum(flags[0] for flags in sent) <= 240
    # Another seed picks other scenes; fraction 1 sends everything.
    other = feedback(0.5, seed=1)
    assert [other._sends(a[0]) for a in scenes] != [flags[0] for flags in sent]
    assert all(feedback(1.0)._sends(a[0]) for a in scenes)

"""FeedbackCallback on hand-built SingleAgentEpisodes (no Ray cluster), and apply_feedback."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import ray.cloudpickle
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mmrlhf.callbacks import FeedbackCallback, apply_feedback, make_feedback_callback
from mmrlhf.callbacks.episodes import record_from_episode, set_episode_rewards
from mmrlhf.feedback.config import FeedbackConfig

FIRST_IMAGE = np.full((4, 4, 3), 7, np.uint8)


def obs(i: int) -> dict[str, np.ndarray]:
    image = FIRST_IMAGE if i == 0 else np.zeros((4, 4, 3), np.uint8)
    return {"image": image, "text": np.array([i, 0, 0], np.int64)}


def step_info(score: float) -> dict[str, Any]:
    return {"task": "caption", "score": score, "oracle_action": 1}


def final_info(score: float) -> dict[str, Any]:
    return {
        **step_info(score),
        "prompt": "describe the scene",
        "response": "red circle",
        "ground_truth": "big red circle",
        "success": score >= 1.0,
        "f1": score,
    }


def episode(
    score: float = 1.0, env_rewards: tuple[float, ...] = (0.0, 0.0, 1.0)
) -> SingleAgentEpisode:
    """A finished 3-step episode whose step scores rise to `score`."""
    ep = SingleAgentEpisode()
    ep.add_env_reset(obs(0), step_info(0.0))
    n = len(env_rewards)
    for t, r in enumerate(env_rewards):
        last = t == n - 1
        info = final_info(score) if last else step_info(score * (t + 1) / n)
        ep.add_env_step(obs(t + 1), t + 2, r, info, terminated=last)
    return ep


def runner(index: int = 1, in_evaluation: bool = False) -> SimpleNamespace:
    """Stand-in for an EnvRunner: only the attributes the callback reads."""
    config = SimpleNamespace(in_evaluation=in_evaluation, metrics_num_episodes_for_smoothing=10)
    return SimpleNamespace(worker_index=index, config=config, tune_trial_id=None)


def end(cb: RLlibCallback, ep: SingleAgentEpisode, env_runner: Any = None) -> MetricsLogger:
    metrics = MetricsLogger()
    env_runner = env_runner if env_runner is not None else runner()
    cb.on_episode_end(
        episode=ep,
        prev_episode_chunks=[],
        env_runner=env_runner,
        metrics_logger=metrics,
        env_index=0,
    )
    cb.on_sample_end(env_runner=env_runner, metrics_logger=metrics, samples=[ep])
    return metrics


def iteration_means(cb: FeedbackCallback, metrics: MetricsLogger) -> dict[str, Any]:
    """What the algorithm's result shows under env_runners after `on_train_result`."""
    result = {"env_runners": dict(metrics.peek())}
    cb.on_train_result(algorithm=None, result=result)
    return result["env_runners"]


def test_oracle_feedback_lands_on_last_step() -> None:
    cfg = FeedbackConfig(enabled=True, env_weight=0.5, feedback_weight=2.0)
    ep = episode(score=0.75, env_rewards=(0.2, 0.0, 1.0))
    cb = FeedbackCallback(cfg)
    metrics = end(cb, ep)
    assert ep.get_rewards() == pytest.approx([0.1, 0.0, 0.5 + 2.0 * 0.75])
    assert metrics.peek("feedback/labels") == 1 and metrics.peek("feedback/skipped") == 0
    means = iteration_means(cb, metrics)
    assert means["feedback/reward_mean"] == 0.75 and means["feedback/agreement"] == 1.0
    assert metrics.peek("accuracy") == 0.0 and metrics.peek("score") == 0.75


def test_feedback_only_reward_with_env_weight_zero() -> None:
    cfg = FeedbackConfig(enabled=True, env_weight=0.0)
    ep = episode(score=1.0, env_rewards=(0.3, 0.3, 1.0))
    end(FeedbackCallback(cfg), ep)
    assert ep.get_rewards() == [0.0, 0.0, 1.0]


def test_skipped_episode_gets_no_feedback_reward() -> None:
    cfg = FeedbackConfig(enabled=True, rater="skip", skip_prob=1.0, env_weight=2.0)
    ep = episode(env_rewards=(0.0, 0.5, 1.0))
    cb = FeedbackCallback(cfg)
    metrics = end(cb, ep)
    assert ep.get_rewards() == [0.0, 1.0, 2.0]
    assert metrics.peek("feedback/skipped") == 1 and metrics.peek("feedback/labels") == 0
    assert "feedback/reward_mean" not in iteration_means(cb, metrics)


def test_disabled_logs_metrics_and_leaves_rewards() -> None:
    ep = episode(score=1.0, env_rewards=(0.0, 0.0, 1.0))
    metrics = end(FeedbackCallback(), ep)
    assert ep.get_rewards() == [0.0, 0.0, 1.0]
    assert metrics.peek("accuracy") == 1.0 and metrics.peek("score") == 1.0
    assert "feedback/labels" not in metrics.peek()


def test_evaluation_runner_is_not_rated() -> None:
    cfg = FeedbackConfig(enabled=True, env_weight=0.0)
    ep = episode(env_rewards=(0.0, 0.0, 1.0))
    metrics = end(FeedbackCallback(cfg), ep, runner(in_evaluation=True))
    assert ep.get_rewards() == [0.0, 0.0, 1.0]
    assert metrics.peek("accuracy") == 1.0
    assert "feedback/labels" not in metrics.peek()


def test_budget_and_counts_across_one_sample_call() -> None:
    cb = FeedbackCallback(FeedbackConfig(enabled=True, label_budget=2, env_weight=0.0))
    metrics, env_runner = MetricsLogger(), runner()
    finals = []
    for _ in range(4):
        ep = episode(score=1.0)
        cb.on_episode_end(episode=ep, env_runner=env_runner, metrics_logger=metrics, env_index=0)
        finals.append(ep.get_rewards()[-1])
    assert finals == [1.0, 1.0, 0.0, 0.0]
    assert "feedback/labels" not in metrics.peek()  # counts wait for the sample() end
    cb.on_sample_end(env_runner=env_runner, metrics_logger=metrics, samples=[])
    assert metrics.peek("feedback/labels") == 2 and metrics.peek("feedback/not_rated") == 2
    assert metrics.peek("feedback/labels_lifetime") == 2
    assert iteration_means(cb, metrics)["feedback/reward_mean"] == 1.0


def test_rater_is_seeded_by_runner_index() -> None:
    cfg = FeedbackConfig(enabled=True, rater="noisy", sigma=0.3, seed=5)

    def finals(index: int) -> list[float]:
        cb = FeedbackCallback(cfg)
        out = []
        for _ in range(5):
            ep = episode(score=0.5, env_rewards=(0.0, 0.0, 0.0))
            end(cb, ep, runner(index))
            out.append(ep.get_rewards()[-1])
        return out

    assert finals(1) == finals(1)
    assert finals(1) != finals(2)


def test_record_from_episode_reads_everything() -> None:
    ep = episode(score=0.75)
    rec = record_from_episode(ep, env_runner_id=2)
    assert rec.episode_id == ep.id_ and rec.env_runner_id == 2
    assert rec.actions == [2, 3, 4] and rec.step_scores == pytest.approx([0.25, 0.5, 0.75])
    assert rec.prompt == "describe the scene" and rec.ground_truth == "big red circle"
    assert rec.score == 0.75 and rec.success is False and rec.extras == {"f1": 0.75}
    np.testing.assert_array_equal(rec.image, FIRST_IMAGE)


def test_record_from_chunked_episode() -> None:
    full = episode(score=1.0)
    first = full.slice(slice(0, 1))
    rest = full.slice(slice(1, 3))
    rec = record_from_episode(rest, prev_chunks=[first])
    assert rec.actions == [2, 3, 4] and len(rec.step_scores) == 3
    np.testing.assert_array_equal(rec.image, FIRST_IMAGE)


# --- config plumbing -------------------------------------------------------------------------


def test_made_class_carries_config_through_cloudpickle() -> None:
    cfg = FeedbackConfig(enabled=True, rater="noisy", sigma=0.4)
    cls = make_feedback_callback(cfg)
    assert issubclass(cls, FeedbackCallback) and cls().config == cfg
    # What RLlib does to ship the class to a remote EnvRunner: unpickled in a fresh process
    # (in this one cloudpickle would hand back the same class object).
    code = (
        "import sys, ray.cloudpickle as p; "
        "print(p.loads(sys.stdin.buffer.read())().config.model_dump_json())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=ray.cloudpickle.dumps(cls),
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert FeedbackConfig.model_validate_json(out.stdout.decode().strip()) == cfg
    assert FeedbackCallback().config == FeedbackConfig()  # base class untouched


def test_apply_feedback_sets_complete_episodes() -> None:
    config = PPOConfig()
    assert config.batch_mode == "truncate_episodes"
    cfg = FeedbackConfig(enabled=True)
    out = apply_feedback(config, cfg)
    assert out is config
    assert config.batch_mode == "complete_episodes"
    assert issubclass(config.callbacks_class, FeedbackCallback)
    assert config.callbacks_class().config == cfg
    # survives the dict round trip Tune does, and serialize() (which a partial would break)
    restored = PPOConfig.from_dict(config.to_dict())
    assert restored.callbacks_class().config == cfg
    assert "make_feedback_callback" in config.serialize()["callbacks"]


def test_apply_feedback_twice_keeps_one_and_keeps_other_callbacks() -> None:
    class Other(RLlibCallback):
        pass

    config = PPOConfig().callbacks(Other)
    apply_feedback(config, FeedbackConfig(enabled=True, rater="binary"))
    apply_feedback(config, FeedbackConfig(enabled=True, rater="click"))
    classes = config.callbacks_class
    assert isinstance(classes, list) and len(classes) == 2 and classes[1] is Other
    assert classes[0]().config.rater == "click"


def test_apply_feedback_disabled_keeps_batch_mode_but_installs_metrics() -> None:
    config = apply_feedback(PPOConfig(), FeedbackConfig(enabled=False))
    assert config.batch_mode == "truncate_episodes"
    assert issubclass(config.callbacks_class, FeedbackCallback)


def test_apply_feedback_warns_about_per_runner_budget(caplog: pytest.LogCaptureFixture) -> None:
    config = PPOConfig().env_runners(num_env_runners=2)
    with caplog.at_level("WARNING", logger="mmrlhf.callbacks.apply"):
        apply_feedback(config, FeedbackConfig(enabled=True, label_budget=10))
    assert "per EnvRunner" in caplog.text and "use_hub" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmrlhf.callbacks.apply"):
        apply_feedback(config, FeedbackConfig(enabled=True, label_budget=10, use_hub=True))
    assert caplog.text == ""


# to_numpy() on an episode built without spaces warns that the dict observations get cast.
@pytest.mark.filterwarnings("ignore:.*Casting input x to numpy array")
def test_set_episode_rewards_in_place_finalized_and_after_a_lookback() -> None:
    ep = episode(env_rewards=(0.0, 0.0, 1.0))
    set_episode_rewards(ep, [0.1, 0.2, 0.3])
    assert ep.get_rewards() == pytest.approx([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="has 3 rewards, got 2"):
        set_episode_rewards(ep, [0.1, 0.2])
    # A continued chunk keeps the previous chunk's last step as lookback: only its own
    # steps are written.
    first = SingleAgentEpisode()
    first.add_env_reset(obs(0), step_info(0.0))
    first.add_env_step(obs(1), 1, 0.3, step_info(0.5))
    chunk = first.cut(len_lookback_buffer=1)
    chunk.add_env_step(obs(2), 1, 0.5, final_info(1.0), terminated=True)
    set_episode_rewards(chunk, [2.0])
    assert chunk.get_rewards() == pytest.approx([2.0])
    assert chunk.get_rewards(-1, neg_index_as_lookback=True) == pytest.approx(0.3)
    # A finalized (numpy) episode goes through RLlib's setter.
    done = episode(env_rewards=(0.0, 1.0))
    done.to_numpy()
    set_episode_rewards(done, [0.25, 0.75])
    assert done.get_rewards() == pytest.approx([0.25, 0.75])

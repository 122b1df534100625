"""Complete-episode sampling must keep drawing new episodes (CompleteEpisodesEnvRunner).

RLlib 2.60 re-seeds its envs at every `sample()` call in `complete_episodes` mode, so a seeded
run replays the same episodes forever; a reward model (or policy) fed from them memorises a
handful of scenes. `apply_feedback` installs `CompleteEpisodesEnvRunner`, which seeds each env once.
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

import mmrlhf.envs  # noqa: F401  (registers "MyMultimodalEnv" with RLlib)
from mmrlhf.callbacks import apply_feedback
from mmrlhf.callbacks.env_runner import CompleteEpisodesEnvRunner
from mmrlhf.feedback.config import FeedbackConfig
from mmrlhf.models import ModelConfig, model_spec

pytestmark = pytest.mark.ray


def distinct_scenes(runner: SingleAgentEnvRunner, calls: int) -> int:
    images = {
        hashlib.blake2b(ep.get_observations(0)["image"].tobytes()).hexdigest()
        for _ in range(calls)
        for ep in runner.sample(random_actions=True)
    }
    return len(images)


def config(seed: int = 0) -> PPOConfig:
    return (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config={"task": "vqa", "image_size": 16})
        .rl_module(rl_module_spec=model_spec(ModelConfig(text_encoder="bag", embed_dim=16)))
        .env_runners(num_envs_per_env_runner=2)
        .debugging(seed=seed)
    )


def test_complete_episodes_draw_new_scenes_and_stay_reproducible(ray_session: None) -> None:
    fixed = apply_feedback(config(), FeedbackConfig(enabled=True))
    assert fixed.batch_mode == "complete_episodes"
    assert fixed.env_runner_cls is CompleteEpisodesEnvRunner
    # 10 sample() calls of 2 one-step episodes: 20 scenes, not the same 2 again and again
    assert distinct_scenes(CompleteEpisodesEnvRunner(config=fixed), 10) >= 18
    plain = config().env_runners(batch_mode="complete_episodes")
    assert distinct_scenes(SingleAgentEnvRunner(config=plain), 10) == 2  # RLlib's replay

    def first_scenes(seed: int) -> list[str]:
        runner = CompleteEpisodesEnvRunner(config=apply_feedback(config(seed), FeedbackConfig()))
        return [ep.get_infos(-1).get("ground_truth", "") for ep in runner.sample(
            num_episodes=6, random_actions=True)]  # fmt: skip

    assert first_scenes(0) == first_scenes(0)


def test_repeated_scenes_reach_the_runner_as_runs(ray_session: None) -> None:
    env_config = {"task": "vqa", "image_size": 16, "scene_repeats": 2}
    runner = CompleteEpisodesEnvRunner(
        config=apply_feedback(config().environment(env_config=env_config), FeedbackConfig())
    )
    counts: dict[str, int] = {}
    for _ in range(2):
        for ep in runner.sample(num_episodes=10, random_actions=True):
            key = hashlib.blake2b(ep.get_observations(0)["image"].tobytes()).hexdigest()
            counts[key] = counts.get(key, 0) + 1
    # 20 episodes from 2 envs: 10 scenes, each answered twice (the last may be cut off)
    assert sum(counts.values()) == 20
    assert sorted(counts.values()).count(2) >= 9 and max(counts.values()) == 2


@pytest.mark.parametrize("task", ["vqa", "caption"])
def test_one_sample_call_fills_the_runners_share_with_complete_episodes(
    ray_session: None, task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = config().environment(env_config={"task": task, "image_size": 16})
    base = base.env_runners(num_envs_per_env_runner=4, rollout_fragment_length=16)
    runner = CompleteEpisodesEnvRunner(config=apply_feedback(base, FeedbackConfig(enabled=True)))
    inner: list[int] = []
    plain_sample = SingleAgentEnvRunner.sample

    def counted(self: SingleAgentEnvRunner, **kwargs: object) -> list:
        inner.append(1)
        return plain_sample(self, **kwargs)

    monkeypatch.setattr(SingleAgentEnvRunner, "sample", counted)
    for _ in range(3):
        inner.clear()
        episodes = runner.sample(random_actions=True)
        assert all(ep.is_done for ep in episodes)  # complete episodes only
        assert sum(len(ep) for ep in episodes) >= 16 * 4  # the runner's whole share
    if task == "vqa":  # one-step episodes: the length is known after the first call
        assert len(inner) == 1


def test_one_step_episodes_need_no_reset_only_env_steps(ray_session: None) -> None:
    base = config().env_runners(num_envs_per_env_runner=4, rollout_fragment_length=16)
    runner = CompleteEpisodesEnvRunner(config=apply_feedback(base, FeedbackConfig(enabled=True)))
    runner.sample(random_actions=True)  # learns that episodes are one step long
    step_calls: list[int] = []
    env_step = runner.env.step

    def counted(actions: object) -> object:
        step_calls.append(1)
        return env_step(actions)

    runner.env.step = counted  # type: ignore[method-assign]
    episodes = runner.sample(random_actions=True)
    assert len(episodes) == 16 * 4 and all(ep.is_done and len(ep) == 1 for ep in episodes)
    # One vector step per 4 episodes: none spent only resetting the envs that just finished
    # (RLlib's loop alone makes 2 * 16 calls).
    assert len(step_calls) == 16
    images = {hashlib.blake2b(ep.get_observations(0)["image"].tobytes()).digest()
              for ep in episodes}  # fmt: skip
    assert len(images) >= 60  # fresh scenes, not one reset replayed per pass


class RLlibLoopPasses(CompleteEpisodesEnvRunner):
    """The runner as it was before `_one_step_pass`: RLlib's loop, one episode per env."""

    def _one_step_pass(self, *, explore: bool, random_actions: bool = False) -> list:
        return SingleAgentEnvRunner._sample(
            self, num_episodes=self.num_envs, explore=explore, random_actions=random_actions
        )


def count_calls(obj: object, name: str) -> list[int]:
    """Wrap `obj.name` so that every call appends to the returned list."""
    calls: list[int] = []
    wrapped = getattr(obj, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return wrapped(*args, **kwargs)

    setattr(obj, name, counted)
    return calls


def test_one_step_pass_runs_connectors_once_and_keeps_rllibs_episode_contents(
    ray_session: None,
) -> None:
    base = config().env_runners(num_envs_per_env_runner=4, rollout_fragment_length=8)
    cfg = apply_feedback(base, FeedbackConfig(enabled=True))
    runners = {"lean": CompleteEpisodesEnvRunner(config=cfg), "rllib": RLlibLoopPasses(config=cfg)}
    contents = {}
    for name, runner in runners.items():
        runner.sample()  # learns that episodes are one step long (RLlib's loop)
        connector_calls = count_calls(runner, "_env_to_module")
        created = count_calls(runner, "_new_episode")
        runner.get_metrics()
        episodes = runner.sample()  # the policy acts (explore): extra model outputs stored
        assert len(episodes) == 8 * 4 and all(ep.is_done and len(ep) == 1 for ep in episodes)
        metrics = runner.get_metrics()
        assert metrics["num_env_steps_sampled"] == 32 and metrics["num_episodes"] == 32
        contents[name] = {
            "extra": sorted(episodes[0].extra_model_outputs),
            "obs": sorted(episodes[0].get_observations(-1)),
            "per_pass": (len(connector_calls) / 8, len(created) / 8),
        }
    assert contents["lean"]["extra"] == contents["rllib"]["extra"]
    assert contents["lean"]["obs"] == contents["rllib"]["obs"]
    # Per pass of 4 envs: one connector run and 4 new episodes, against RLlib's loop's two
    # runs (the second on observations no module call will read) and 8 episodes.
    assert contents["lean"]["per_pass"] == (1, 4)
    assert contents["rllib"]["per_pass"] == (2, 8)


class StretchingEpisodes(gym.Env):
    """One-step episodes for each env's first `one_step_resets` resets, three-step ones after."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    one_step_resets = 4

    def __init__(self, config: object = None) -> None:
        self.resets = 0
        self.t = 0
        self.length = 1

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        self.length = 1 if self.resets <= self.one_step_resets else 3
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple:
        self.t += 1
        return np.full(2, self.t / 3, np.float32), 1.0, self.t >= self.length, False, {}


def test_an_episode_longer_than_one_step_sends_sampling_back_to_rllibs_loop(
    ray_session: None,
) -> None:
    cfg = (
        PPOConfig()
        .environment(StretchingEpisodes)
        .env_runners(
            env_runner_cls=CompleteEpisodesEnvRunner,
            batch_mode="complete_episodes",
            num_envs_per_env_runner=2,
            rollout_fragment_length=4,
        )
    )
    runner = CompleteEpisodesEnvRunner(config=cfg)
    first = runner.sample(random_actions=True)  # resets 1-4: one-step episodes
    assert [len(ep) for ep in first] == [1] * 8 and not runner._longer_seen
    second = runner.sample(random_actions=True)  # reset 5 starts three-step episodes
    assert runner._longer_seen
    # Only complete episodes: the one-step pass's two unfinished ones were dropped, and
    # RLlib's loop sampled the rest of the share.
    assert all(ep.is_done and len(ep) == 3 for ep in second)
    assert sum(len(ep) for ep in second) >= 8
    third = runner.sample(random_actions=True)
    assert all(ep.is_done and len(ep) == 3 for ep in third)


def test_metrics_log_only_the_episodes_their_windows_keep(ray_session: None) -> None:
    base = config().env_runners(num_envs_per_env_runner=4, rollout_fragment_length=16)
    noisy = FeedbackConfig(enabled=True, rater="noisy", sigma=0.5)  # returns mostly differ
    cfg = apply_feedback(base, noisy).reporting(metrics_num_episodes_for_smoothing=10)
    runner = CompleteEpisodesEnvRunner(config=cfg)
    runner.sample()
    runner.get_metrics()
    runner.sample()  # 64 episodes
    episodes = list(runner._done_episodes_for_metrics)
    assert len(episodes) == 64 and len({ep.get_return() for ep in episodes}) > 20
    window = 10 // cfg.num_env_runners  # RLlib's window per EnvRunner
    last = [ep.get_return() for ep in episodes[-window:]]
    trimmed = runner.get_metrics()
    assert runner._done_episodes_for_metrics == []
    # RLlib's own get_metrics, every episode logged, on a runner that has sampled nothing
    plain = CompleteEpisodesEnvRunner(config=cfg)
    plain._done_episodes_for_metrics = episodes
    full = SingleAgentEnvRunner.get_metrics(plain)
    assert float(trimmed["episode_return_mean"]) == pytest.approx(np.mean(last))
    for key in ("episode_return_mean", "episode_return_min", "episode_return_max",
                "episode_len_mean", "episode_len_min", "episode_len_max"):  # fmt: skip
        assert float(trimmed[key]) == float(full[key]), key
    for key in ("agent_episode_return_mean", "module_episode_return_mean"):
        assert trimmed[key].keys() == full[key].keys()
        for name in full[key]:
            assert float(trimmed[key][name]) == float(full[key][name]), (key, name)


def test_one_step_pass_samples_what_rllibs_loop_samples(ray_session: None) -> None:
    base = config().env_runners(num_envs_per_env_runner=4, rollout_fragment_length=8)
    cfg = apply_feedback(base, FeedbackConfig(enabled=True))
    sampled = {}
    for name, cls in (("lean", CompleteEpisodesEnvRunner), ("rllib", RLlibLoopPasses)):
        runner = cls(config=cfg)  # seeded: the same weights and envs
        torch.manual_seed(0)  # the same action draws
        runner.sample()  # RLlib's loop for the first call, then one-step passes
        episodes = runner.sample()
        sampled[name] = [
            (ep.get_actions(0), ep.get_rewards(0),
             float(ep.get_extra_model_outputs(Columns.ACTION_LOGP, 0)),
             hashlib.blake2b(ep.get_observations(0)["image"].tobytes()).hexdigest())
            for ep in episodes
        ]  # fmt: skip
    assert len(sampled["lean"]) == 32
    assert sampled["lean"] == sampled["rllib"]

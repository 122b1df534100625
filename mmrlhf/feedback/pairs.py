"""Offline labelled pairs from the env: reward-model training data and held-out test sets.

A pair is two rollouts of the same scene and prompt (the env reset with the same seed), ordered
by their ground-truth scores (pairs with equal scores are dropped). The first is the oracle's;
the second, the distractor, is

- `random`: a mostly-random policy's. Easy: most random answers are not even the right kind of
  word ("two" to a colour question), so this mostly measures whether the reward model knows
  what kind of answer a question wants;
- `swap`: the oracle's answer to *another* scene with the same prompt, replayed on this one: a
  sensible answer, right for a different image. Only a reward model that looks at the image
  tells these apart, and an RLHF policy's wrong answers look like this once it has learnt
  the answer format.

Which one is shown first is a coin flip, so position carries no signal. Pairs are saved to /
loaded from a compressed `.npz` file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from mmrlhf.envs import MyMultimodalEnv
from mmrlhf.envs.config import EnvConfig
from mmrlhf.feedback.preferences import PreferenceLabel
from mmrlhf.feedback.samples import EpisodeSample, encode_response

logger = logging.getLogger(__name__)

DEFAULT_RESPONSE_LEN = 8
Distractor = Literal["random", "swap"]
DISTRACTORS: tuple[str, ...] = get_args(Distractor)
_FIELDS = ("image", "prompt_ids", "response_ids", "score")


def rollout(
    env: MyMultimodalEnv,
    *,
    seed: int,
    oracle_prob: float,
    rng: np.random.Generator,
    response_len: int,
    episode_id: str,
    replay: Sequence[int] | None = None,
) -> tuple[EpisodeSample, list[int]]:
    """Play one episode from `env.reset(seed=seed)`; return its sample and the actions taken.

    Each step replays the next action of `replay` if given (random actions once it runs
    out), else takes the oracle action with probability `oracle_prob` and a uniformly random
    one otherwise.
    """
    obs, info = env.reset(seed=seed)
    image, prompt_ids = obs["image"].copy(), obs["text"].copy()
    actions: list[int] = []
    done = False
    while not done:
        if replay is not None and len(actions) < len(replay):
            action = int(replay[len(actions)])
        elif replay is None and rng.random() < oracle_prob:
            action = int(info["oracle_action"])
        else:
            action = int(rng.integers(env.action_space.n))
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    sample = EpisodeSample(
        episode_id=episode_id,
        image=image,
        prompt_ids=prompt_ids,
        response_ids=encode_response(env.tokenizer, info["response"], response_len),
        score=float(info["score"]),
        prompt=str(info["prompt"]),
        response=str(info["response"]),
    )
    return sample, actions


def oracle_pairs(
    env_config: EnvConfig | Mapping[str, Any],
    n_pairs: int,
    *,
    seed: int = 0,
    response_len: int = DEFAULT_RESPONSE_LEN,
    oracle_probs: tuple[float, float] = (1.0, 0.0),
    distractor: Distractor = "random",
    max_tries: int | None = None,
) -> tuple[list[EpisodeSample], list[PreferenceLabel]]:
    """`n_pairs` oracle-ordered pairs of rollouts (see the module docstring).

    Args:
        env_config: The env to roll out.
        n_pairs: Pairs wanted.
        seed: Seeds scenes (seed * 1_000_003 + i) and the policies' randomness.
        response_len: Padded response length of the samples.
        oracle_probs: Oracle-action probability of the first and (`random`) second rollout.
        distractor: `random` or `swap` (the second rollout replays the first rollout of an
            earlier scene with the same prompt; scenes whose prompt was not seen yet only
            supply answers for later ones).
        max_tries: Scenes tried at most (default 20 * n_pairs).

    Returns:
        The samples (two per pair) and one strict preference label per pair.

    Raises:
        ValueError: For an unknown `distractor`.
        RuntimeError: If too few scenes gave pairs with different scores.
    """
    if distractor not in DISTRACTORS:
        raise ValueError(f"distractor must be one of {DISTRACTORS}, got {distractor!r}")
    env = MyMultimodalEnv(env_config)
    rng = np.random.default_rng(seed)
    samples: list[EpisodeSample] = []
    labels: list[PreferenceLabel] = []
    donors: dict[str, list[int]] = {}  # prompt -> the latest first-rollout actions for it
    tries = max_tries if max_tries is not None else 20 * n_pairs
    for i in range(tries):
        if len(labels) >= n_pairs:
            break
        scene_seed = seed * 1_000_003 + i
        common = {"seed": scene_seed, "rng": rng, "response_len": response_len}
        a, actions = rollout(env, oracle_prob=oracle_probs[0], episode_id=f"pair{seed}-{i}-0",
                             **common)  # fmt: skip
        if distractor == "swap":
            donor = donors.get(a.prompt_key)
            donors[a.prompt_key] = actions
            if donor is None:
                continue
            b, _ = rollout(env, oracle_prob=0.0, replay=donor, episode_id=f"pair{seed}-{i}-1",
                           **common)  # fmt: skip
        else:
            b, _ = rollout(env, oracle_prob=oracle_probs[1], episode_id=f"pair{seed}-{i}-1",
                           **common)  # fmt: skip
        if a.score == b.score:
            continue
        if rng.random() < 0.5:
            a, b = b, a
        samples += [a, b]
        labels.append(PreferenceLabel(a.episode_id, b.episode_id, 1.0 if a.score > b.score else 0.0,
                                      source="oracle"))  # fmt: skip
    if len(labels) < n_pairs:
        why = (
            ": with distractor='swap', other scenes with the same prompt had the same answer "
            "(e.g. a test split whose held-out pairs leave one answer per question)"
            if distractor == "swap"
            else ""
        )
        raise RuntimeError(
            f"only {len(labels)} of {n_pairs} pairs had different scores after {tries} "
            f"scenes{why}"
        )
    return samples, labels


def random_episodes(
    env_config: EnvConfig | Mapping[str, Any],
    n: int,
    *,
    seed: int = 0,
    response_len: int = DEFAULT_RESPONSE_LEN,
) -> list[EpisodeSample]:
    """`n` episodes of a uniformly random policy (scenes seeded from `seed`, apart from
    `oracle_pairs`' scenes): unlabelled data for contrastive reward-model pretraining."""
    env = MyMultimodalEnv(env_config)
    rng = np.random.default_rng([seed, 1])
    return [
        rollout(env, seed=(seed + 1) * 7_000_003 + i, oracle_prob=0.0, rng=rng,
                response_len=response_len, episode_id=f"unlabelled{seed}-{i}")[0]
        for i in range(n)
    ]  # fmt: skip


def save_pairs(
    path: str | Path, samples: list[EpisodeSample], labels: list[PreferenceLabel]
) -> Path:
    """Write pairs to a compressed `.npz` (arrays for the a and b sides, plus p_a)."""
    by_id = {s.episode_id: s for s in samples}
    arrays: dict[str, np.ndarray] = {"p_a": np.array([lab.p_a for lab in labels], np.float32)}
    for side in ("a", "b"):
        side_samples = [by_id[getattr(lab, side)] for lab in labels]
        for name in _FIELDS:
            values = [np.asarray(getattr(s, name)) for s in side_samples]
            arrays[f"{side}_{name}"] = np.stack(values)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return out


def load_pairs(path: str | Path) -> tuple[list[EpisodeSample], list[PreferenceLabel]]:
    """Read pairs written by `save_pairs`."""
    data = np.load(Path(path))
    samples: list[EpisodeSample] = []
    labels: list[PreferenceLabel] = []
    for i, p_a in enumerate(data["p_a"]):
        ids = []
        for side in ("a", "b"):
            sample = EpisodeSample(
                episode_id=f"{side}{i}",
                image=data[f"{side}_image"][i],
                prompt_ids=data[f"{side}_prompt_ids"][i],
                response_ids=data[f"{side}_response_ids"][i],
                score=float(data[f"{side}_score"][i]),
            )
            samples.append(sample)
            ids.append(sample.episode_id)
        labels.append(PreferenceLabel(ids[0], ids[1], float(p_a), source="file"))
    return samples, labels

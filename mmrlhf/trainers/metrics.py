"""The few numbers a person reads from an RLlib result dict, under stable names."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Our name -> path in RLlib's (nested) result dict.
RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "iteration": ("training_iteration",),
    "env_steps": ("env_runners", "num_env_steps_sampled_lifetime"),
    "episodes": ("env_runners", "num_episodes_lifetime"),
    "return_mean": ("env_runners", "episode_return_mean"),
    "accuracy": ("env_runners", "accuracy"),
    "score": ("env_runners", "score"),
    "feedback_reward": ("env_runners", "feedback/reward_mean"),
    "labels": ("env_runners", "feedback/labels_lifetime"),
    "agreement": ("env_runners", "feedback/agreement"),
    # RLHF (feedback.source=reward_model): the hub's label mix and reward-model quality.
    "label_queries": ("feedback", "queries"),
    "label_ties": ("feedback", "ties"),
    "label_both_bad": ("feedback", "both_bad"),
    # Challenger queries (query_mode novel) the challenger won outright.
    "label_challenger_wins": ("feedback", "challenger_wins"),
    # Share of the hub's pool that the policy floor drew (EpisodeSample.floor_drawn).
    "pool_floor_drawn": ("feedback", "pool_floor_drawn"),
    "rm_version": ("feedback", "rm_version"),
    "rm_accuracy": ("feedback", "rm_accuracy"),
    "rm_pretrain_steps": ("feedback", "rm_pretrain_steps"),
    "rm_contrastive_loss": ("feedback", "rm_contrastive_loss"),
    "rm_refits": ("feedback", "rm_refits"),
    "rm_passes": ("feedback", "rm_passes"),
    "time_total_s": ("time_total_s",),
    "time_this_iter_s": ("time_this_iter_s",),
}


def dig(result: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """`result[a][b]...`, or None when any level is missing."""
    node: Any = result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _plain(value: Any) -> float | int | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f):
        return None
    return int(f) if f.is_integer() else f


def summarize(result: Mapping[str, Any]) -> dict[str, float | int | None]:
    """The headline metrics of one training iteration (None where RLlib reported nothing)."""
    return {name: _plain(dig(result, path)) for name, path in RESULT_KEYS.items()}


def progress_line(row: Mapping[str, Any], total_iters: int | None, eta_s: float | None) -> str:
    """One line per iteration, e.g.
    `iter 3/20 | steps 1,536 | acc 0.420 | fb 0.400 | ret 0.400 | labels 512 | 4.1 s/it | ETA 1m`
    """

    def num(key: str, fmt: str) -> str:
        v = row.get(key)
        return "-" if v is None else format(v, fmt)

    it = f"{row.get('iteration')}/{total_iters}" if total_iters else f"{row.get('iteration')}"
    parts = [
        f"iter {it}",
        f"steps {num('env_steps', ',')}",
        f"acc {num('accuracy', '.3f')}",
        f"fb {num('feedback_reward', '.3f')}",
        f"ret {num('return_mean', '.3f')}",
        f"labels {num('labels', ',')}",
        f"{num('time_this_iter_s', '.1f')} s/it",
    ]
    if eta_s is not None:
        m, s = divmod(int(eta_s), 60)
        parts.append(f"ETA {m}m{s:02d}s")
    return " | ".join(parts)

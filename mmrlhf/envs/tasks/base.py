"""The task interface every MyMultimodalEnv task implements, and the task registry.

A task owns the episode's content (scene, prompt, response so far) and its scoring; the env owns
spaces, seeding, rewards and the Gymnasium protocol. A new task is one subclass plus
`register_task`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.tokenizer import Tokenizer


@dataclass(slots=True)
class Observation:
    """What the agent sees: the RGB image and the text (not yet tokenised)."""

    image: np.ndarray
    text_ids: np.ndarray


@dataclass(slots=True)
class Outcome:
    """Result of one action: the next observation, whether the episode ended, its score in
    [0, 1], and (on the final step) whether the task was solved."""

    obs: Observation
    done: bool
    score: float
    success: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One multimodal task.

    Subclasses set `name`, build their action space size in `__init__`, and implement `reset`,
    `step`, `oracle_action` and the strings a rater needs (`prompt`, `response`, `ground_truth`).
    All randomness comes from the generator passed to `reset`.
    """

    name: ClassVar[str]
    multi_step: ClassVar[bool] = False

    def __init__(self, cfg: EnvConfig, tokenizer: Tokenizer | None = None) -> None:
        self.cfg = cfg
        self.tokenizer: Tokenizer = tokenizer or self.make_tokenizer()

    def make_tokenizer(self) -> Tokenizer:
        """The vocabulary used when no `tokenizer_path` is given: the shared task grammar."""
        from mmrlhf.envs.grammar import grammar_tokenizer

        return grammar_tokenizer()

    @property
    @abstractmethod
    def num_actions(self) -> int:
        """Size of the Discrete action space."""

    @abstractmethod
    def action_name(self, action: int) -> str:
        """Human-readable meaning of an action (an answer word, a question, an index)."""

    @abstractmethod
    def reset(self, rng: np.random.Generator) -> Observation:
        """Start a new episode."""

    @abstractmethod
    def step(self, action: int) -> Outcome:
        """Apply an action (already range-checked by the env)."""

    @abstractmethod
    def oracle_action(self) -> int:
        """What a perfect policy does now; read from the hidden state, for tests and raters."""

    @abstractmethod
    def prompt(self) -> str:
        """The episode's question or instruction, decoded."""

    @abstractmethod
    def response(self) -> str:
        """The agent's response so far, decoded."""

    @abstractmethod
    def ground_truth(self) -> str:
        """The correct response, as text."""

    def encode(self, text: str) -> np.ndarray:
        return self.tokenizer.encode(text, self.cfg.max_text_len)

    def token_count(self, text: str) -> int:
        """Tokens `text` takes in the observation (without padding)."""
        return int(np.count_nonzero(self.tokenizer.encode(text, 512)))


_REGISTRY: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task selectable by `EnvConfig.task = cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def get_task(name: str) -> type[Task]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(task_names())}") from None


def task_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))

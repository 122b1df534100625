"""`MyMultimodalEnv`: the Gymnasium env every mmrlhf experiment trains on."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.render import text_panel
from mmrlhf.envs.tasks import get_task
from mmrlhf.envs.tokenizer import HFTokenizer


class MyMultimodalEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Image + text tasks for agents that learn from feedback.

    ## Description
    Each episode shows a procedurally generated scene (or one of the user's images) and a text:
    a question, an instruction, candidate captions or a dialogue history. The agent acts by
    picking a discrete symbol: an answer, a caption word, a candidate index, a question or a
    guess. Tasks (`EnvConfig.task`): `vqa`, `caption`, `retrieval`, `dialogue`, `dataset`.

    ## Observation
    `Dict(image=Box(0, 255, (H, W, 3), uint8), text=Box(0, V-1, (L,), int64))`: an RGB image and
    left-aligned token ids, 0 = padding. `V` is the tokenizer's vocabulary size and `L` is
    `max_text_len`. Ground truth is never in the observation; it is in `info`.

    ## Action
    `Discrete(n)` with `n` set by the task (`env.action_names()` lists what each action means).

    ## Rewards
    `reward_mode="env"`: the final step pays the task score in [0, 1] (correctness, caption
    attribute F1, dialogue success less a turn penalty); other steps pay 0.
    `reward_mode="none"`: always 0, so the signal must come from feedback callbacks.

    ## Episode end
    One step for `vqa`, `retrieval` and `dataset`; at EOS or the length limit for `caption`; at a
    guess or the turn limit for `dialogue`. Every step's info has `task`, `score` (the response
    so far) and `oracle_action`; the final step's info adds `prompt`, `response`,
    `ground_truth`, `success` and task extras (see docs/architecture.md).

    ## Arguments
    `config`: an `EnvConfig` or a mapping of its fields (RLlib passes `env_config` here);
    keyword arguments override it. `render_mode="rgb_array"` makes `render()` return a frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(
        self,
        config: EnvConfig | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(config, EnvConfig):
            cfg = config.model_copy(update=overrides) if overrides else config
        else:
            cfg = EnvConfig.from_mapping(config, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not supported; allowed: rgb_array")
        self.cfg = cfg
        self.render_mode = render_mode
        tokenizer = HFTokenizer(cfg.tokenizer_path) if cfg.tokenizer_path else None
        self.task = get_task(cfg.task)(cfg, tokenizer)
        self.tokenizer = self.task.tokenizer
        size = cfg.image_size
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "text": spaces.Box(0, self.tokenizer.vocab_size - 1, (cfg.max_text_len,), np.int64),
            }
        )
        self.action_space = spaces.Discrete(self.task.num_actions)
        self._obs: dict[str, np.ndarray] | None = None
        self._last_info: dict[str, Any] = {}
        self._done = True
        self._repeats_left = 0
        self._scene_state: dict[str, Any] = {}

    def action_names(self) -> list[str]:
        """What each action means, in order."""
        return [self.task.action_name(a) for a in range(self.task.num_actions)]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if self.cfg.scene_repeats > 1:
            # Rewinding the generator to where this scene was drawn draws it again.
            if seed is not None or self._repeats_left == 0:
                self._scene_state = copy.deepcopy(self.np_random.bit_generator.state)
                self._repeats_left = self.cfg.scene_repeats
            else:
                self.np_random.bit_generator.state = self._scene_state
            self._repeats_left -= 1
        ob = self.task.reset(self.np_random)
        self._obs = {"image": ob.image, "text": ob.text_ids}
        self._done = False
        self._last_info = {"task": self.cfg.task, "score": 0.0,
                           "oracle_action": self.task.oracle_action()}  # fmt: skip
        return self._obs, dict(self._last_info)

    def step(
        self, action: int | np.integer
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        a = int(action)
        if not 0 <= a < self.task.num_actions:
            allowed = f"0..{self.task.num_actions - 1}"
            raise ValueError(f"action {action!r} out of range; allowed: {allowed}")
        out = self.task.step(a)
        self._obs = {"image": out.obs.image, "text": out.obs.text_ids}
        info: dict[str, Any] = {"task": self.cfg.task, "score": out.score}
        reward = 0.0
        if out.done:
            self._done = True
            info.update(
                prompt=self.task.prompt(),
                response=self.task.response(),
                ground_truth=self.task.ground_truth(),
                success=out.success,
                **out.extras,
            )
            if self.cfg.reward_mode == "env":
                reward = out.score
        else:
            info["oracle_action"] = self.task.oracle_action()
        self._last_info = info
        # Length limits are part of each task's definition, so episodes terminate, never truncate.
        return self._obs, reward, out.done, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        lines = [
            f"task: {self.cfg.task}",
            f"text: {self.task.prompt()}",
            f"response: {self.task.response()}",
        ]
        if self._done:
            lines.append(f"truth: {self._last_info.get('ground_truth', '')}  "
                         f"score: {self._last_info.get('score', 0.0):.2f}")  # fmt: skip
        return text_panel(self._obs["image"], lines)

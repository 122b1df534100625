"""Multi-turn dialogue: find a hidden target by asking yes/no questions, then guess its cell."""

from __future__ import annotations

import numpy as np

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.grammar import DIALOGUE_PROMPTS, DIALOGUE_QUESTIONS
from mmrlhf.envs.render import render_scene
from mmrlhf.envs.scenes import POSITIONS, Scene, SceneObject, sample_scene
from mmrlhf.envs.tasks.base import Observation, Outcome, Task, register_task
from mmrlhf.envs.tokenizer import Tokenizer

_ATTRS = ("color", "shape", "size")
_NUM_QUESTIONS = len(DIALOGUE_QUESTIONS)


def _matches(obj: SceneObject, attr: str, value: str) -> bool:
    return bool(getattr(obj, attr) == value)


@register_task
class DialogueTask(Task):
    """Guess which object the partner means.

    The text starts with a partial description ("find the red object") that may fit several
    objects. Actions `0..11` ask a yes/no attribute question (the answer is appended to the text
    history); actions `12..20` commit to a guess of a grid cell, which ends the episode. Running
    out of `max_turns` questions ends it as a failure. Score: `1 - turn_penalty * questions` on a
    correct guess (never below 0), else 0.
    """

    name = "dialogue"
    multi_step = True

    def __init__(self, cfg: EnvConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(cfg, tokenizer)
        self.scene: Scene | None = None
        self.opening = ""
        self.turns: list[tuple[str, str]] = []
        self.guess: int | None = None
        self.known: list[tuple[str, str, bool]] = []
        self.image = np.zeros((0, 0, 3), dtype=np.uint8)

    @property
    def num_actions(self) -> int:
        return _NUM_QUESTIONS + len(POSITIONS)

    def action_name(self, action: int) -> str:
        if action < _NUM_QUESTIONS:
            return DIALOGUE_QUESTIONS[action][2]
        return f"guess {POSITIONS[action - _NUM_QUESTIONS]}"

    def reset(self, rng: np.random.Generator) -> Observation:
        cfg = self.cfg
        scene = sample_scene(rng, cfg.num_objects, cfg.split)
        target = scene.target
        # Prefer a description that fits more than one object, so asking is worth it.
        shared = [
            a for a in _ATTRS if sum(getattr(o, a) == getattr(target, a) for o in scene.objects) > 1
        ]
        pool = shared or list(_ATTRS)
        attr = pool[int(rng.integers(len(pool)))]
        self.scene = scene
        self.opening = DIALOGUE_PROMPTS[attr].format(**{attr: getattr(target, attr)})
        self.known = [(attr, getattr(target, attr), True)]
        self.turns, self.guess = [], None
        self.image = render_scene(scene.objects, cfg.image_size)
        return Observation(self.image, self._text())

    def _text(self) -> np.ndarray:
        # Keep the opening and as many of the newest turns as fit in max_text_len.
        budget = self.cfg.max_text_len - self.token_count(self.opening)
        kept: list[str] = []
        for q, a in reversed(self.turns):
            piece = f"<sep> {q} {a}"
            cost = self.token_count(piece)
            if cost > budget:
                break
            kept.insert(0, piece)
            budget -= cost
        return self.encode(" ".join([self.opening, *kept]))

    def candidates(self) -> list[SceneObject]:
        """Objects consistent with everything said so far."""
        assert self.scene is not None
        return [
            o for o in self.scene.objects if all(_matches(o, a, v) == y for a, v, y in self.known)
        ]

    def step(self, action: int) -> Outcome:
        assert self.scene is not None, "step() before reset()"
        target = self.scene.target
        if action >= _NUM_QUESTIONS:
            self.guess = action - _NUM_QUESTIONS
            success = self.guess == target.cell
            score = max(0.0, 1.0 - self.cfg.turn_penalty * len(self.turns)) if success else 0.0
            obs = Observation(self.image, self._text())
            return Outcome(obs, True, score, success=success, extras=self._extras())
        attr, value, question = DIALOGUE_QUESTIONS[action]
        yes = _matches(target, attr, value)
        self.known.append((attr, value, yes))
        self.turns.append((question, "yes" if yes else "no"))
        done = len(self.turns) >= self.cfg.max_turns
        extras = self._extras() if done else {}
        return Outcome(Observation(self.image, self._text()), done, 0.0, extras=extras)

    def _extras(self) -> dict[str, object]:
        return {"turns": len(self.turns)}

    def oracle_action(self) -> int:
        cands = self.candidates()
        if len(cands) <= 1 or len(self.turns) + 1 >= self.cfg.max_turns:
            return _NUM_QUESTIONS + (cands[0] if cands else self.scene.target).cell  # type: ignore[union-attr]
        for i, (attr, value, _) in enumerate(DIALOGUE_QUESTIONS):
            yes = sum(_matches(o, attr, value) for o in cands)
            if 0 < yes < len(cands):
                return i
        return _NUM_QUESTIONS + cands[0].cell

    def prompt(self) -> str:
        return self.opening

    def response(self) -> str:
        parts = [f"{q} {a}" for q, a in self.turns]
        if self.guess is not None:
            parts.append(f"guess {POSITIONS[self.guess]}")
        return " | ".join(parts)

    def ground_truth(self) -> str:
        assert self.scene is not None
        t = self.scene.target
        return f"the {t.size} {t.color} {t.shape} at {t.position}"

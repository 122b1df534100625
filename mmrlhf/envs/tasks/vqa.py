"""Visual question answering: one question about the scene, one answer, one step."""

from __future__ import annotations

import numpy as np

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.grammar import NUMBERS, PLURALS, VQA_ANSWERS, VQA_TEMPLATES
from mmrlhf.envs.render import render_scene
from mmrlhf.envs.scenes import HELD_OUT, TRAIN_PAIRS, Scene, sample_scene
from mmrlhf.envs.tasks.base import Observation, Outcome, Task, register_task
from mmrlhf.envs.tokenizer import Tokenizer


@register_task
class VQATask(Task):
    """Answer a question (colour, shape, count, existence, position) from a fixed vocabulary.

    Score: 1 for the right answer, 0 otherwise. The action space is the whole answer
    vocabulary (`VQA_ANSWERS`) whatever the question types, so heads transfer between configs.
    """

    name = "vqa"

    def __init__(self, cfg: EnvConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(cfg, tokenizer)
        self._answer_index = {a: i for i, a in enumerate(VQA_ANSWERS)}
        self._text_cache: dict[str, np.ndarray] = {}
        self.scene: Scene | None = None
        self.question = ""
        self.question_type = ""
        self.answer = 0
        self.chosen: int | None = None
        self.image = np.zeros((0, 0, 3), dtype=np.uint8)

    @property
    def num_actions(self) -> int:
        return len(VQA_ANSWERS)

    def action_name(self, action: int) -> str:
        return VQA_ANSWERS[action]

    def _text(self, question: str) -> np.ndarray:
        ids = self._text_cache.get(question)
        if ids is None:
            ids = self._text_cache[question] = self.encode(question)
        return ids.copy()

    def reset(self, rng: np.random.Generator) -> Observation:
        cfg = self.cfg
        qtypes = cfg.question_types
        u = rng.random(2)
        qtype = qtypes[int(u[0] * len(qtypes))]
        unique = {"color": "shape", "shape": "color"}.get(qtype)
        scene = sample_scene(rng, cfg.num_objects, cfg.split, unique=unique)  # type: ignore[arg-type]
        t = scene.target
        if qtype == "color":
            question, answer = VQA_TEMPLATES["color"].format(shape=t.shape), t.color
        elif qtype == "shape":
            question, answer = VQA_TEMPLATES["shape"].format(color=t.color), t.shape
        elif qtype == "count":
            question = VQA_TEMPLATES["count"].format(plural=PLURALS[t.shape])
            answer = NUMBERS[scene.count(t.shape)]
        elif qtype == "exists":
            color, shape = t.pair
            answer = "yes"
            if u[1] < 0.5:
                present = {o.pair for o in scene.objects}
                pool = HELD_OUT if cfg.split == "test" else TRAIN_PAIRS
                absent = sorted(p for p in pool if p not in present)
                color, shape = absent[int(rng.integers(len(absent)))]
                answer = "no"
            question = VQA_TEMPLATES["exists"].format(color=color, shape=shape)
        else:
            question = VQA_TEMPLATES["position"].format(color=t.color, shape=t.shape)
            answer = t.position
        self.scene, self.question, self.question_type = scene, question, qtype
        self.answer, self.chosen = self._answer_index[answer], None
        # The image never changes within an episode; the episode's observations share it.
        self.image = render_scene(scene.objects, cfg.image_size)
        return Observation(self.image, self._text(question))

    def step(self, action: int) -> Outcome:
        assert self.scene is not None, "step() before reset()"
        self.chosen = action
        score = float(action == self.answer)
        obs = Observation(self.image, self._text(self.question))
        extras = {"question_type": self.question_type}
        return Outcome(obs, True, score, success=score == 1.0, extras=extras)

    def oracle_action(self) -> int:
        return self.answer

    def prompt(self) -> str:
        return self.question

    def response(self) -> str:
        return "" if self.chosen is None else VQA_ANSWERS[self.chosen]

    def ground_truth(self) -> str:
        return VQA_ANSWERS[self.answer]

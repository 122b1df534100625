"""Caption generation: one word per step until EOS or the length limit.

There is no per-step reward: caption quality (attribute F1 against the ground-truth description)
is known only at the end, which makes this the task where episode-end feedback is the whole
signal.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.grammar import CAPTION_PROMPT, CAPTION_WORDS
from mmrlhf.envs.render import render_scene
from mmrlhf.envs.scenes import Scene, sample_scene
from mmrlhf.envs.tasks.base import Observation, Outcome, Task, register_task
from mmrlhf.envs.tokenizer import Tokenizer

_EOS = CAPTION_WORDS.index("<eos>")
_ATTRIBUTE_WORDS = frozenset(w for w in CAPTION_WORDS if w not in ("and", "<eos>"))


def attribute_f1(predicted: list[str], truth: list[str]) -> float:
    """F1 between the multisets of attribute words (sizes, colours, shapes) in two captions.

    Order and connectives are ignored: "red circle" and "circle red" score the same.
    """
    p = Counter(w for w in predicted if w in _ATTRIBUTE_WORDS)
    t = Counter(w for w in truth if w in _ATTRIBUTE_WORDS)
    if not p or not t:
        return float(not p and not t)
    overlap = sum((p & t).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def describe(scene: Scene) -> list[str]:
    """The ground-truth caption: objects in reading order, "size colour shape", joined by "and"."""
    words: list[str] = []
    for i, obj in enumerate(scene.reading_order()):
        if i:
            words.append("and")
        words.extend(obj.words())
    return words


@register_task
class CaptionTask(Task):
    """Describe the scene word by word. Actions are caption words (`CAPTION_WORDS`) and EOS.

    The text observation is the prompt followed by the caption so far. The episode ends at EOS
    or after `max_caption_len` words (default: one more than the ground truth's length); the
    score is attribute F1 against `describe(scene)`.
    """

    name = "caption"
    multi_step = True

    def __init__(self, cfg: EnvConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(cfg, tokenizer)
        needed = 4 * self.cfg.num_objects - 1
        self.max_len = self.cfg.max_caption_len or needed + 1
        if self.max_len < needed:
            raise ValueError(
                f"caption: max_caption_len={self.max_len} is shorter than the {needed} words "
                f"needed to describe num_objects={self.cfg.num_objects}; allowed: >= {needed}"
            )
        self.scene: Scene | None = None
        self.truth: list[str] = []
        self.words: list[str] = []
        self.image = np.zeros((0, 0, 3), dtype=np.uint8)

    @property
    def num_actions(self) -> int:
        return len(CAPTION_WORDS)

    def action_name(self, action: int) -> str:
        return CAPTION_WORDS[action]

    def _obs(self) -> Observation:
        return Observation(self.image, self.encode(" ".join([CAPTION_PROMPT, *self.words])))

    def reset(self, rng: np.random.Generator) -> Observation:
        cfg = self.cfg
        self.scene = sample_scene(rng, cfg.num_objects, cfg.split, all_targets=True)
        self.truth = describe(self.scene)
        self.words = []
        self.image = render_scene(self.scene.objects, cfg.image_size)
        return self._obs()

    def step(self, action: int) -> Outcome:
        assert self.scene is not None, "step() before reset()"
        done = action == _EOS
        if not done:
            self.words.append(CAPTION_WORDS[action])
            done = len(self.words) >= self.max_len
        f1 = attribute_f1(self.words, self.truth)
        extras = {}
        if done:
            extras = {"f1": f1, "exact_match": self.words == self.truth}
        return Outcome(self._obs(), done, f1, success=done and f1 == 1.0, extras=extras)

    def oracle_action(self) -> int:
        n = len(self.words)
        if n < len(self.truth) and self.words == self.truth[:n]:
            return CAPTION_WORDS.index(self.truth[n])
        return _EOS

    def prompt(self) -> str:
        return CAPTION_PROMPT

    def response(self) -> str:
        return " ".join(self.words)

    def ground_truth(self) -> str:
        return " ".join(self.truth)

"""Cross-modal retrieval: pick the candidate that matches, text to image or image to text."""

from __future__ import annotations

import numpy as np

from mmrlhf.envs.config import EnvConfig
from mmrlhf.envs.grammar import RETRIEVAL_I2T, RETRIEVAL_T2I
from mmrlhf.envs.render import render_tiles
from mmrlhf.envs.scenes import SIZES, TRAIN_PAIRS, SceneObject, pairs_for
from mmrlhf.envs.tasks.base import Observation, Outcome, Task, register_task
from mmrlhf.envs.tokenizer import Tokenizer

_TRAIN_ITEMS: tuple[tuple[str, str, str], ...] = tuple(
    (c, s, z) for c, s in TRAIN_PAIRS for z in SIZES
)


def describe(obj: SceneObject) -> str:
    return " ".join(obj.words())


@register_task
class RetrievalTask(Task):
    """One step; the action is the index of the matching candidate (`num_candidates` of them).

    - text_to_image: the text is a query ("find the small red circle") and the image tiles the
      candidates row-major.
    - image_to_text: the image shows one object and the text lists candidate descriptions
      separated by `<sep>`.

    Candidates are distinct (size, colour, shape) triples; the target follows the split rule and
    distractors come from the training pairs. Score: 1 for the target, else 0.
    """

    name = "retrieval"

    def __init__(self, cfg: EnvConfig, tokenizer: Tokenizer | None = None) -> None:
        super().__init__(cfg, tokenizer)
        k = self.cfg.num_candidates
        if self.cfg.retrieval_mode != "text_to_image" and self.cfg.max_text_len < 4 * k + 1:
            raise ValueError(
                f"retrieval: image_to_text with num_candidates={k} needs max_text_len >= "
                f"{4 * k + 1} (got {self.cfg.max_text_len})"
            )
        self.candidates: tuple[SceneObject, ...] = ()
        self.target = 0
        self.mode = "text_to_image"
        self.chosen: int | None = None
        self.obs: Observation | None = None

    @property
    def num_actions(self) -> int:
        return self.cfg.num_candidates

    def action_name(self, action: int) -> str:
        return f"candidate {action}"

    def reset(self, rng: np.random.Generator) -> Observation:
        cfg = self.cfg
        k = cfg.num_candidates
        u = rng.random(3)
        mode = cfg.retrieval_mode
        if mode == "mixed":
            mode = "text_to_image" if u[0] < 0.5 else "image_to_text"
        pairs = pairs_for(cfg.split)
        c, s = pairs[int(u[1] * len(pairs))]
        target = (c, s, SIZES[int(u[2] * len(SIZES))])
        items = [target]
        while len(items) < k:
            item = _TRAIN_ITEMS[int(rng.integers(len(_TRAIN_ITEMS)))]
            if item not in items:
                items.append(item)
        order = rng.permutation(k)
        objs = [SceneObject(color=c, shape=s, size=z, cell=4) for c, s, z in items]
        self.candidates = tuple(objs[int(i)] for i in order)
        self.target = int(np.flatnonzero(order == 0)[0])
        self.mode, self.chosen = mode, None
        shown = self.candidates if mode == "text_to_image" else [self.candidates[self.target]]
        self.obs = Observation(render_tiles(shown, cfg.image_size), self.encode(self.prompt()))
        return self.obs

    def step(self, action: int) -> Outcome:
        assert self.obs is not None, "step() before reset()"
        self.chosen = action
        extras = {"retrieval_mode": self.mode, "target_index": self.target}
        hit = action == self.target
        return Outcome(self.obs, True, float(hit), success=hit, extras=extras)

    def oracle_action(self) -> int:
        return self.target

    def prompt(self) -> str:
        if self.mode == "text_to_image":
            t = self.candidates[self.target]
            return RETRIEVAL_T2I.format(size=t.size, color=t.color, shape=t.shape)
        return " ".join([RETRIEVAL_I2T, " <sep> ".join(describe(o) for o in self.candidates)])

    def response(self) -> str:
        if self.chosen is None:
            return ""
        if self.mode == "image_to_text":
            return f"{self.chosen}: {describe(self.candidates[self.chosen])}"
        return f"{self.chosen}"

    def ground_truth(self) -> str:
        return f"{self.target}: {describe(self.candidates[self.target])}"

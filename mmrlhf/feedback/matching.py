"""How well an episode's image fits the words of its response, by label-free encoders.

The reward model's contrastive steps (`RewardModelTrainer.pretrain`) align pooled image and
prompt embeddings on unlabelled episodes: a prompt that names "red" ("what shape is the red
object ?") is asked only of scenes holding something red, so after them the cosine between a
scene's image and that prompt says whether the scene holds red. `AnswerMatcher` reads that
cosine for the words of a response, with the weights the contrastive steps left (the hub's
anchor), which no label has touched: a label-trained reward model rates an answer the labels
have only seen wrong low on every scene, and could not say where it is right (on vqa, AUC
0.39-0.54; the contrastive weights 0.78-0.89, scripts/probe_contrastive_match.py).

Floor challengers use it to pick, among the floor's draws of an answer, the scene where the
answer is most likely right (`feedback.queries.novel_queries`, `match_fn`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import torch

from mmrlhf.feedback.reward_model import RewardEnsemble, RewardModelSpec
from mmrlhf.feedback.samples import EpisodeSample, stack_samples


def prompt_words(text: str) -> set[str]:
    """The words of a decoded prompt or response (punctuation tokens dropped)."""
    return {w for w in text.replace("?", " ").replace(":", " ").split() if w}


def naming_prompts(
    samples: Sequence[EpisodeSample], words: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """For each word (of `words`, or any), the token ids of the first prompt among `samples`
    that contains it; words no prompt contains are left out."""
    out: dict[str, np.ndarray] = {}
    wanted = None if words is None else set(words)
    for sample in samples:
        found = prompt_words(sample.prompt)
        for word in found if wanted is None else found & wanted:
            out.setdefault(word, sample.prompt_ids)
    return out


class AnswerMatcher:
    """Cosine between an image's and a naming prompt's pooled embeddings, averaged over the
    members of a reward-model ensemble (in eval mode, no gradients).

    Args:
        ensemble: Its members' `embeddings` are read; it is not trained here. The hub passes
            a copy holding the contrastive (anchor) weights.
    """

    def __init__(self, ensemble: RewardEnsemble) -> None:
        self.ensemble = ensemble.eval()

    @classmethod
    def from_weights(
        cls, spec: RewardModelSpec, weights: Mapping[str, torch.Tensor]
    ) -> AnswerMatcher:
        """A matcher on a fresh ensemble of `spec` holding `weights` (a state dict)."""
        ensemble = RewardEnsemble(spec)
        ensemble.load_state_dict(dict(weights))
        return cls(ensemble)

    @torch.no_grad()
    def similarity(self, images: torch.Tensor, prompt_ids: np.ndarray) -> np.ndarray:
        """Mean cosine over members between each image (B, H, W, 3) and one prompt, (B,)."""
        prompt = torch.as_tensor(np.stack([prompt_ids] * len(images)))
        sims = []
        for member in self.ensemble.members:
            image, text = member.embeddings(images, prompt)
            sims.append(torch.nn.functional.cosine_similarity(image, text, dim=-1))
        return torch.stack(sims).mean(0).numpy()

    def response_match(
        self, samples: Sequence[EpisodeSample], naming: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """Per sample, the mean `similarity` of its image with the naming prompts of its
        response's words, leaving out the words its own prompt names; NaN where no word is
        left that has a naming prompt (nothing to say).

        A word the episode's own question names is in its scene whatever the answer: on vqa,
        "what shape is the blue object ?" is asked only where something is blue, so "blue"
        matched that scene best of all (online, the matched floor challengers went to colour
        words on shape questions, never right)."""
        if not samples:
            return np.zeros(0)
        images = stack_samples(samples).image
        total = np.zeros(len(samples))
        named = np.zeros(len(samples))
        open_words = [prompt_words(s.response) - prompt_words(s.prompt) for s in samples]
        for word, ids in naming.items():
            rows = [i for i, words in enumerate(open_words) if word in words]
            if rows:
                total[rows] += self.similarity(images[rows], ids)
                named[rows] += 1
        with np.errstate(invalid="ignore"):
            return np.where(named > 0, total / np.maximum(named, 1), np.nan)

"""The multimodal reward model: (image, prompt, response) -> scalar, as an ensemble.

One member reuses the policy's building blocks from `mmrlhf.models` (the same `ModelConfig`
choices of text encoder, image encoder and fusion)::

    prompt ids   -> text_encoder  --+
                                    +-> fusion -> f (B, F) -> context MLP -> c (B, D)
    image        -> image_encoder --+
    response ids -> text_encoder (same weights) -> pooled v (B, D)
    reward = head([f, v, c * v])  (B,)

The response goes through the text encoder on its own, not appended to the prompt, so even a
bag-of-words encoder can tell "red" in the question from "red" as the answer; the `c * v`
product lets the head compare what the image and prompt call for with what was answered
(the same bilinear form as the policy's logits over answers). That is the `compare` head.

The `answer_logits` head is shaped like the policy instead::

    f (B, F) -> MLP -> logits over the vocabulary (B, V)
    reward = mean log-softmax probability of the response's tokens (pads skipped; an
             empty response is scored as the pad token)

The reward is then a log-likelihood: comparable across scenes, at most 0, and its negative on
a strict winner is the demonstration loss `RewardModelTrainer` can add (`winner_weight`).
Measured offline on vqa (docs/architecture.md), it and the policy's trunk are what carry
1,000 preference labels to held-out colour-shape pairs.

The `answer_sigmoid` head has the same logits but judges each word on its own::

    reward = mean logit of the response's tokens (pads skipped): the log-odds that the
             response is *a* right answer, P(right) = sigmoid(reward)

Under the softmax every label that raises one word lowers all the others, so words that no
label has named sink below words labelled wrong, and a policy that maximises the reward never
tries them: online on vqa the policy settled on the five words its first labels named, and no
label ever showed the other five as right. Under the sigmoid a word no label has named stays
near even odds (its logit starts near 0), above the words labelled wrong: optimism about
what the labels have not said, so the policy tries it and the queries ask. The reward is the
log-odds, not log P(right): a log-sigmoid flattens out near 0, where Bradley-Terry could no
longer push a wrong answer below a right one that both score near 1.

`RewardModel.log_prob_right` reads any head's reward as log P(the response is right): the
Bernoulli that marked ties, thumbs and the winner term are fitted with.

`RewardEnsemble` holds N independent members; the reward is their mean and the uncertainty
their standard deviation. `RewardModelSpec` is everything needed to rebuild the architecture
(in an EnvRunner, or from a checkpoint); weights travel as a plain state dict of tensors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_args

import torch
from torch import nn

from mmrlhf.feedback.config import ANSWER_HEADS, RMHead
from mmrlhf.feedback.samples import SampleTensors
from mmrlhf.models.config import ModelConfig
from mmrlhf.models.heads import mlp
from mmrlhf.models.spaces import ObservationLayout
from mmrlhf.models.text_encoders import PAD_ID
from mmrlhf.models.trunk import build_trunk

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "reward_model.pt"
METADATA_FILE = "reward_model.json"

REWARD_HEADS: tuple[str, ...] = get_args(RMHead)


@dataclass(frozen=True)
class RewardModelSpec:
    """Architecture of a reward-model ensemble (JSON-friendly).

    Attributes:
        image_size: Side of the square uint8 image.
        prompt_len: Prompt token length L (the env's `max_text_len`).
        response_len: Response token length R.
        vocab_size: Text vocabulary size (the env tokenizer's).
        model: `ModelConfig` fields for the encoders and fusion (`hidden_sizes` = head MLP).
        ensemble_size: Number of members N.
        head: `compare`, `answer_logits` or `answer_sigmoid` (see the module docstring).
    """

    image_size: int
    prompt_len: int
    response_len: int
    vocab_size: int
    model: dict[str, Any]
    ensemble_size: int = 3
    head: RMHead = "compare"

    def __post_init__(self) -> None:
        if self.head not in REWARD_HEADS:
            raise ValueError(f"reward-model head must be one of {REWARD_HEADS}, got {self.head!r}")

    def model_config(self) -> ModelConfig:
        """The validated encoder/fusion settings."""
        return ModelConfig.model_validate(self.model)

    def layout(self) -> ObservationLayout:
        """Sizes for the encoders; text length covers both prompt and response."""
        return ObservationLayout(
            height=self.image_size,
            width=self.image_size,
            text_len=max(self.prompt_len, self.response_len),
            vocab_size=self.vocab_size,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (round-trips through `from_dict` and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RewardModelSpec:
        """Inverse of `to_dict`."""
        return cls(**dict(data))


class RewardModel(nn.Module):
    """One ensemble member: scores a batch of (image, prompt, response) (see module doc)."""

    def __init__(self, spec: RewardModelSpec) -> None:
        super().__init__()
        cfg = spec.model_config()
        layout = spec.layout()
        self.head_kind: RMHead = spec.head
        self.text_encoder, self.image_encoder, self.fusion = build_trunk(layout, cfg)
        features = self.fusion.output_dim
        if spec.head in ANSWER_HEADS:
            self.answer_head = mlp(features, cfg.hidden_sizes, spec.vocab_size, out_gain=0.01)
        else:
            self.context = mlp(features, cfg.hidden_sizes, cfg.embed_dim, out_gain=1.0)
            self.head = mlp(features + 2 * cfg.embed_dim, cfg.hidden_sizes, 1, out_gain=0.01)

    def forward(
        self, image: torch.Tensor, prompt: torch.Tensor, response: torch.Tensor
    ) -> torch.Tensor:
        """Rewards (B,) for images (B, H, W, 3) uint8, prompt ids (B, L), response ids (B, R)."""
        return self.score(self.features(image, prompt), response)

    def features(self, image: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """Fused scene features (B, F): what every response to the scene is scored against."""
        return self.fusion(self.text_encoder(prompt.long()), self.image_encoder(image))

    def score(self, features: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) of responses (B, R) to scenes with these `features`."""
        if self.head_kind in ANSWER_HEADS:
            return _mean_over_tokens(self.per_word(features), response)
        answer = self.text_encoder(response.long()).pooled
        context = self.context(features)
        return self.head(torch.cat([features, answer, context * answer], dim=-1)).squeeze(-1)

    def per_word(self, features: torch.Tensor) -> torch.Tensor:
        """Every vocabulary word's score (B, V) as a one-word answer (answer heads only):
        its log-likelihood for `answer_logits`, its log-odds of being right for
        `answer_sigmoid`. A response's reward is the mean over its tokens."""
        if self.head_kind not in ANSWER_HEADS:
            raise ValueError(
                f"per_word needs an answer head {ANSWER_HEADS}, not {self.head_kind!r}"
            )
        logits = self.answer_head(features)
        return torch.log_softmax(logits, dim=-1) if self.head_kind == "answer_logits" else logits

    def answer_log_likelihood(
        self,
        features: torch.Tensor,
        response: torch.Tensor,
        logit_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean log-softmax probability (B,) of the responses' tokens among every word the
        answer head can give (answer heads only). For `answer_logits` this is the reward; for
        `answer_sigmoid` it reads the same logits as one categorical answer per scene, which
        is what the winner term's softmax form fits (`TrainerSettings.winner_softmax`).
        `logit_offset` (B, V) is added to the logits first
        (`TrainerSettings.winner_prior_adjust`)."""
        if self.head_kind not in ANSWER_HEADS:
            raise ValueError(
                f"answer_log_likelihood needs an answer head {ANSWER_HEADS}, not {self.head_kind!r}"
            )
        logits = self.answer_head(features)
        if logit_offset is not None:
            logits = logits + logit_offset
        return _mean_over_tokens(torch.log_softmax(logits, dim=-1), response)

    def log_prob_right(self, reward: torch.Tensor) -> torch.Tensor:
        """log P(the response is right) for rewards of this head: the reward itself for
        `answer_logits` (a log-likelihood), its log-sigmoid for the others (log-odds)."""
        if self.head_kind == "answer_logits":
            return reward
        return nn.functional.logsigmoid(reward)

    def embeddings(
        self, image: torch.Tensor, prompt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled image and prompt embeddings (B, D) each: what the contrastive term of
        `RewardModelTrainer` aligns, so the encoders learn from unlabelled episodes too."""
        return self.image_encoder(image).pooled, self.text_encoder(prompt.long()).pooled


class RewardEnsemble(nn.Module):
    """N independently initialised `RewardModel`s.

    Args:
        spec: Architecture (its `ensemble_size` members are built).
        seed: Seeds the members' initial weights (member i uses seed + i), so two ensembles
            built with the same seed are identical.
    """

    def __init__(self, spec: RewardModelSpec, seed: int = 0) -> None:
        super().__init__()
        if spec.ensemble_size < 1:
            raise ValueError(f"ensemble_size must be >= 1, got {spec.ensemble_size}")
        self.spec = spec
        members = []
        for i in range(spec.ensemble_size):
            # fork_rng keeps member initialisation off the caller's global torch stream.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + i)
                members.append(RewardModel(spec))
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, batch: SampleTensors) -> torch.Tensor:
        """Every member's rewards, shape (N, B)."""
        return torch.stack([m(batch.image, batch.prompt, batch.response) for m in self.members])

    @torch.inference_mode()
    def predict(
        self, batch: SampleTensors, minus: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble mean (B,) and standard deviation across members (B,), without gradients,
        in eval mode; `minus` (N, B) is taken off each member's rewards first (the prompt
        baseline of `feedback.contrast`)."""
        if self.training:  # switching modes walks every submodule: only when needed
            self.eval()
            try:
                scores = self(batch)
            finally:
                self.train()
        else:
            scores = self(batch)
        if minus is not None:
            scores = scores - minus
        std, mean = torch.std_mean(scores, dim=0, unbiased=False)
        return mean, std

    def weights(self) -> dict[str, torch.Tensor]:
        """A detached CPU copy of the state dict (what gets published to EnvRunners)."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}


def save_reward_model(
    path: str | Path,
    ensemble: RewardEnsemble,
    *,
    version: int = 0,
    norm: tuple[float, float] = (0.0, 1.0),
    extra: Mapping[str, Any] | None = None,
    prompt_baseline: Mapping[str, Any] | None = None,
) -> Path:
    """Write a reward-model checkpoint directory: weights (`reward_model.pt`) + metadata JSON.

    Args:
        path: Directory (created).
        ensemble: The model.
        version: Published version number.
        norm: Reward (mean, std) the model's outputs were normalised with when published.
        extra: More JSON-friendly metadata (labels used, accuracy...).
        prompt_baseline: `PromptBaseline.to_state()` the published rewards subtracted
            (`feedback.contrast`; read back with `contrast.load_prompt_baseline`).
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "spec": ensemble.spec.to_dict(),
        "version": int(version),
        "norm": [float(norm[0]), float(norm[1])],
        **dict(extra or {}),
    }
    data = {"meta": meta, "state_dict": ensemble.weights()}
    if prompt_baseline:
        meta["image_contrast"] = float(prompt_baseline.get("weight", 0.0))
        meta["contrast_prompts"] = len(prompt_baseline.get("table") or {})
        data["prompt_baseline"] = dict(prompt_baseline)
    torch.save(data, out / CHECKPOINT_FILE)
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    logger.info("saved reward model v%d to %s", version, out)
    return out


def load_reward_model(path: str | Path) -> tuple[RewardEnsemble, dict[str, Any]]:
    """Read a checkpoint written by `save_reward_model`; return the ensemble (eval mode) and
    its metadata (`spec`, `version`, `norm`, ...)."""
    p = Path(path)
    file = p / CHECKPOINT_FILE if p.is_dir() else p
    if not file.is_file():
        raise FileNotFoundError(f"no reward-model checkpoint at {str(p)!r} (expected {file})")
    data = torch.load(file, map_location="cpu", weights_only=True)
    meta = data["meta"]
    ensemble = RewardEnsemble(RewardModelSpec.from_dict(meta["spec"]))
    ensemble.load_state_dict(data["state_dict"])
    ensemble.eval()
    return ensemble, meta


@dataclass(frozen=True)
class PublishedRewardModel:
    """One published reward-model version: what EnvRunners load.

    Attributes:
        version: Increases by one with every publication (1 = first).
        spec: `RewardModelSpec.to_dict()`.
        state_dict: The ensemble's weights (CPU tensors).
        norm_mean: Mean of the ensemble-mean reward on recent episodes when published.
        norm_std: Its standard deviation (> 0).
        labels: Labels the model was trained on.
        pretrain_steps: Contrastive steps the model had (see `RewardModelTrainer.pretrain`).
        novelty_scale: Scale of the exploration bonus EnvRunners add to each reward
            (`feedback.novelty`; 0 = none).
        judged: Labelled episodes per `novelty.judgement_key` (the response), for
            that bonus.
        prompt_baseline: `feedback.contrast.PromptBaseline.to_state()`: what each reward
            subtracts (empty = plain rewards).
    """

    version: int
    spec: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    norm_mean: float = 0.0
    norm_std: float = 1.0
    labels: int = 0
    pretrain_steps: int = 0
    novelty_scale: float = 0.0
    judged: Mapping[str, int] = field(default_factory=dict)
    prompt_baseline: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> RewardEnsemble:
        """A fresh ensemble with these weights, in eval mode."""
        ensemble = RewardEnsemble(RewardModelSpec.from_dict(self.spec))
        ensemble.load_state_dict(self.state_dict)
        ensemble.eval()
        return ensemble


def token_weights(response: torch.Tensor) -> torch.Tensor:
    """Each response token's share (B, R) of its response (B, R token ids): 1 / n over the n
    tokens that are not pads, 0 on pads; an empty response counts as its first (pad) token."""
    mask = response.long() != PAD_ID
    # An empty response is scored as the pad token, like any other answer; averaging over no
    # tokens would give it 0, the best log-likelihood there is.
    mask[:, 0] |= ~mask.any(-1)
    weights = mask.float()
    return weights / weights.sum(-1, keepdim=True)


def _mean_over_tokens(per_word: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Mean (B,) of per-word scores (B, V) over each response's tokens (B, R), pads skipped."""
    weights = token_weights(response).to(per_word.dtype)
    return (per_word.gather(1, response.long()) * weights).sum(-1)

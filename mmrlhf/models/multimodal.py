"""``MultimodalModel``: the PPO policy/value network for image + text observations.

Observation: ``Dict(image=Box(0, 255, (H, W, 3), uint8), text=Box(0, V-1, (L,), int64))``
(id 0 = padding); action: ``Discrete(n)``. Data flow::

    obs.text  -> text_encoder  -> tokens (B, L, D), mask, pooled (B, D) --+
                                                                          +-> fusion -> (B, F)
    obs.image -> image_encoder -> patches (B, T, D), mask, pooled (B, D) -+
    (B, F) -> output.policy -> logits (B, n)      (B, F) -> output.value -> V(s) (B,)

With ``share_encoders=False`` the value function has its own ``value_encoder`` copy of the
trunk; it exists only where values are computed (Learners), not on EnvRunners
(``inference_only`` modules), and is not part of the weights shipped to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override
from torch import nn

from mmrlhf.models.base import Encoder, EncoderOutput, count_parameters
from mmrlhf.models.config import ModelConfig
from mmrlhf.models.finished_rows import FINISHED
from mmrlhf.models.fusion import Fusion
from mmrlhf.models.heads import PolicyValueHeads
from mmrlhf.models.spaces import ObservationLayout, parse_observation_space
from mmrlhf.models.trunk import build_trunk, maybe_compile

logger = logging.getLogger(__name__)

# Extra keys of the forward_train output: pooled embeddings for the contrastive loss.
IMAGE_EMBEDDINGS = "mm_image_embeddings"
TEXT_EMBEDDINGS = "mm_text_embeddings"


def on_rows(
    batch: dict[str, Any],
    rows: torch.Tensor | None,
    fn: Callable[[dict[str, Any]], torch.Tensor],
    trailing: tuple[int, ...] = (),
) -> torch.Tensor:
    """`fn(batch)`, computed only on the observations of `rows` (bool (B,)); 0 elsewhere.

    `rows=None` or all True runs `fn` on the whole batch; `trailing` is the shape of one
    row's output (needed when no row is computed).
    """
    if rows is None or bool(rows.all()):
        return fn(batch)
    obs = batch[Columns.OBS]
    rows = rows.to(obs["image"].device)
    out = torch.zeros((rows.shape[0], *trailing), device=rows.device)
    if bool(rows.any()):
        subset = {Columns.OBS: {k: v[rows] for k, v in obs.items()}}
        out[rows] = fn(subset).to(out.dtype)
    return out


def rows_needing_values(batch: dict[str, Any]) -> torch.Tensor | None:
    """Bool (B,): rows whose value GAE uses, or None when the batch cannot tell.

    Real rows (``LOSS_MASK``) always; an artificial bootstrap row only if the step before it
    did not terminate (a truncated episode or a chunk boundary bootstraps from it).
    """
    mask, terminated = batch.get(Columns.LOSS_MASK), batch.get(Columns.TERMINATEDS)
    if not isinstance(mask, torch.Tensor) or not isinstance(terminated, torch.Tensor):
        return None
    if mask.dim() != 1 or terminated.shape != mask.shape:
        return None
    ended_before = torch.zeros_like(mask, dtype=torch.bool)
    ended_before[1:] = terminated[:-1].bool()
    return mask.bool() | ~ended_before


class MultimodalModel(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """Image + text actor-critic RLModule (RLlib new API stack, torch).

    Configure through ``model_config`` (validated into :class:`ModelConfig`), e.g.::

        RLModuleSpec(module_class=MultimodalModel,
                     model_config=ModelConfig(fusion="cross_attention").to_rllib())

    Submodules: ``text_encoder``, ``image_encoder``, ``fusion``, ``output`` (``policy`` and
    ``value`` heads) and, with ``share_encoders=False`` on a Learner, ``value_encoder``.
    """

    mm_config: ModelConfig
    layout: ObservationLayout
    # Whether GAE may take the values sampled with the batch (see `compute_values`). Only a
    # Learner that knows its batches were sampled with its current weights turns it on.
    reuse_sampled_values: bool = False

    @override(TorchRLModule)
    def setup(self) -> None:
        """Validate spaces and config, build encoders, fusion and heads."""
        self.mm_config = ModelConfig.from_rllib(self.model_config)
        self.layout = parse_observation_space(self.observation_space)
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(
                f"MultimodalModel needs a Discrete action space, got {self.action_space!r}"
            )
        cfg = self.mm_config
        self.text_encoder, self.image_encoder, self.fusion = self._build_trunk()
        value_in = self.fusion.output_dim
        if not cfg.share_encoders and not self.inference_only:
            text, image, fusion = self._build_trunk()
            self.value_encoder = nn.ModuleDict(
                {"text_encoder": text, "image_encoder": image, "fusion": fusion}
            )
            value_in = fusion.output_dim
        self.output = PolicyValueHeads(
            self.fusion.output_dim, value_in, int(self.action_space.n), cfg.hidden_sizes,
            floor=cfg.policy_floor,
        )  # fmt: skip
        self._log_sizes()

    def _build_trunk(self) -> tuple[Encoder, Encoder, Fusion]:
        return build_trunk(self.layout, self.mm_config)

    def _log_sizes(self) -> None:
        parts = ["text_encoder", "image_encoder", "fusion", "output", "value_encoder"]
        sizes = []
        for name in parts:
            if hasattr(self, name):
                trainable, frozen = count_parameters(getattr(self, name))
                sizes.append(f"{name}={trainable:,}" + (f" (+{frozen:,} frozen)" if frozen else ""))
        cfg = self.mm_config
        logger.info(
            "MultimodalModel text=%s image=%s fusion=%s obs=%s%s: %s",
            cfg.text_encoder,
            cfg.image_encoder,
            cfg.fusion,
            self.layout,
            " [inference-only]" if self.inference_only else "",
            ", ".join(sizes),
        )

    @property
    def contrastive_weight(self) -> float:
        """Weight of the auxiliary InfoNCE loss (read by ``MultimodalPPOLearner``)."""
        return self.mm_config.contrastive_weight

    @property
    def floor_logp(self) -> float | None:
        """Log-probability the policy floor's uniform part gives each action (None without a
        floor; read by the reward-model EnvRunner callback, `callbacks.episodes.floor_share`)."""
        return self.output.floor_logp

    @staticmethod
    def _split_obs(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        obs = batch[Columns.OBS]
        return obs["image"], obs["text"].long()

    def encode(
        self, batch: dict[str, Any], *, value: bool = False
    ) -> tuple[torch.Tensor, EncoderOutput, EncoderOutput]:
        """Run a trunk on ``batch[Columns.OBS]``.

        Args:
            batch: Batch holding ``Columns.OBS`` = {"image": (B, H, W, 3), "text": (B, L)}.
            value: Use the value function's own trunk (only with ``share_encoders=False``).

        Returns:
            Fused features (B, F), text and image encoder outputs.
        """
        image, text = self._split_obs(batch)
        if value and not self.mm_config.share_encoders:
            if not hasattr(self, "value_encoder"):
                raise RuntimeError(
                    "This inference-only MultimodalModel has no value_encoder "
                    "(share_encoders=False); compute values on a Learner's module"
                )
            trunk = self.value_encoder
            text_out = trunk["text_encoder"](text)
            image_out = trunk["image_encoder"](image)
            return trunk["fusion"](text_out, image_out), text_out, image_out
        return self._trunk(text, image)

    def _run_trunk(
        self, text: torch.Tensor, image: torch.Tensor
    ) -> tuple[torch.Tensor, EncoderOutput, EncoderOutput]:
        text_out = self.text_encoder(text)
        image_out = self.image_encoder(image)
        return self.fusion(text_out, image_out), text_out, image_out

    @property
    def _trunk(self) -> Callable[..., tuple[torch.Tensor, EncoderOutput, EncoderOutput]]:
        """`_run_trunk`, compiled once per module when `compile_trunk` is set (the policy's
        trunk; a separate value trunk, `share_encoders=False`, stays eager)."""
        if not self.mm_config.compile_trunk:
            return self._run_trunk
        trunk = self.__dict__.get("_compiled_trunk")
        if trunk is None:
            trunk = maybe_compile(self._run_trunk, self.mm_config)
            self.__dict__["_compiled_trunk"] = trunk
        return trunk

    def __getstate__(self) -> dict[str, Any]:
        # A compiled function does not pickle; the copy compiles its own on first use.
        state = super().__getstate__()
        state.pop("_compiled_trunk", None)
        return state

    @override(TorchRLModule)
    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features, _, _ = self.encode(batch)
        return {Columns.ACTION_DIST_INPUTS: self.output.logits(features)}

    @override(TorchRLModule)
    def forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Like RLlib's, but the module stays in eval mode (see `forward_exploration`)."""
        if self.training:
            self.eval()
        return self._forward_inference(batch, **kwargs)

    @override(TorchRLModule)
    def forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Like RLlib's, but the module stays in eval mode afterwards.

        RLlib's version switches to eval mode and back around every call; each switch walks
        every submodule (~0.1 ms for the default model, on the order of a small batch's
        forward pass, at every EnvRunner step). `forward_train` switches back to train mode
        itself, so leaving eval mode on costs learning nothing.
        """
        if self.training:
            self.eval()
        return self._forward_exploration(batch, **kwargs)

    @override(TorchRLModule)
    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            return self._forward_live_rows(batch)

    @override(TorchRLModule)
    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            return self._forward_live_rows(batch, values=self.mm_config.share_encoders)

    def _forward_live_rows(self, batch: dict[str, Any], values: bool = False) -> dict[str, Any]:
        """`_forward` on the rows whose episode goes on; zero logits for finished ones.

        `FINISHED` (see `models/finished_rows.py`) marks envs whose next step only resets
        them: their action is thrown away, so computing it is wasted work. With `values`
        (sampling, shared trunk) the value head runs on the same features and its output is
        returned as `Columns.VF_PREDS`: the episode keeps it, and the Learner's GAE pass
        reuses it instead of encoding every observation again (see `compute_values`).
        """
        finished = batch.get(FINISHED)
        live = None if finished is None else ~torch.as_tensor(finished, dtype=torch.bool)
        n = int(self.action_space.n)

        def heads(rows: dict[str, Any]) -> torch.Tensor:
            features, _, _ = self.encode(rows)
            logits = self.output.logits(features)
            if not values:
                return logits
            return torch.cat([logits, self.output.values(features)[:, None]], dim=-1)

        out = on_rows(batch, live, heads, (n + 1 if values else n,))
        if not values:
            return {Columns.ACTION_DIST_INPUTS: out}
        return {Columns.ACTION_DIST_INPUTS: out[:, :n], Columns.VF_PREDS: out[:, n]}

    @override(TorchRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features, text_out, image_out = self.encode(batch)
        if self.mm_config.share_encoders:
            value_features = features
        else:
            value_features, _, _ = self.encode(batch, value=True)
        return {
            Columns.ACTION_DIST_INPUTS: self.output.logits(features),
            Columns.EMBEDDINGS: value_features,
            IMAGE_EMBEDDINGS: image_out.pooled,
            TEXT_EMBEDDINGS: text_out.pooled,
        }

    @override(ValueFunctionAPI)
    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Values (B,); ``embeddings`` = ``forward_train``'s ``Columns.EMBEDDINGS`` if given.

        In a Learner's GAE pass (the batch holds ``LOSS_MASK`` and ``TERMINATEDS``), rows
        whose value is never used get 0 without a forward pass: PPO's artificial bootstrap
        row after a terminated episode, whose V(s') GAE multiplies by (1 - terminated).
        With ``reuse_sampled_values`` (set by ``MultimodalPPOLearner`` when every batch was
        sampled with the Learner's current weights) real rows take the ``Columns.VF_PREDS``
        the EnvRunner computed while acting, and only bootstrap rows that need a value
        (truncated episodes, chunk ends) are encoded.
        """
        if embeddings is not None:
            return self.output.values(embeddings)
        needed = rows_needing_values(batch)
        sampled = batch.get(Columns.VF_PREDS) if self.reuse_sampled_values else None
        if needed is None or not isinstance(sampled, torch.Tensor):
            return on_rows(batch, needed, self._values)
        real = batch[Columns.LOSS_MASK].bool()
        bootstrap = on_rows(batch, needed & ~real, self._values)
        return torch.where(real, sampled.to(bootstrap.dtype), bootstrap)

    def _values(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.output.values(self.encode(batch, value=True)[0])

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> list[str]:
        """The value function's own trunk is not needed to act (top-level names only:
        RLlib 2.60 deletes dotted names from the wrong object)."""
        return [] if self.mm_config.share_encoders else ["value_encoder"]

"""PPO learner for ``MultimodalModel`` with an auxiliary contrastive loss.

Use it with (RLlib 2.60: ``config.training(learner_class=...)`` is deprecated)::

    config.learners(learner_class=MultimodalPPOLearner)

``compute_loss_for_module`` adds ``contrastive_weight * InfoNCE(image, text)`` on the module's
pooled image/text embeddings (``forward_train`` outputs them) when the module's
``ModelConfig.contrastive_weight`` > 0, and logs it as ``contrastive_loss`` under the module id
(``result["learners"]["default_policy"]["contrastive_loss"]``). Rows that repeat an image or a
text are not used as negatives of each other; PPO's artificial bootstrap rows
(``Columns.LOSS_MASK``) and rows without text are left out. With weight 0 it is exactly
``PPOTorchLearner``.

Frozen encoders need nothing special: RLlib drops ``None`` gradients before applying them.

KL penalty toward a reference policy (RLHF): with ``learner_config_dict[KL_COEFF_CONFIG] > 0``
the loss gains ``kl_coeff * mean KL(pi || pi_ref)`` over the real rows, where ``pi_ref`` is a
frozen copy of the module as built (the initial policy) or, with
``learner_config_dict[KL_REFERENCE_CONFIG]`` set, the policy in that checkpoint (an algorithm
checkpoint or a module directory). Both numbers are logged under the module id as
``feedback/kl`` and ``feedback/kl_coeff``. ``apply_feedback`` fills these keys from
``FeedbackConfig.kl_coeff`` / ``kl_reference``. Note that PPO's own ``kl_coeff`` is a different
thing: a penalty toward the *previous* policy.

Weight decay: with ``learner_config_dict[WEIGHT_DECAY_CONFIG] > 0`` (``training.weight_decay``)
the optimizer is AdamW with that decoupled decay instead of RLlib's plain Adam. It keeps the
policy from growing large text-only priors ("circles are never green") that override what the
image shows on held-out colour-shape pairs (see ``docs/architecture.md``).

Sampled values: with ``learner_config_dict[SAMPLED_VALUES_CONFIG]`` (set by
``build_ppo_config`` unless batches lag the Learner) GAE takes the values the EnvRunners
computed while acting instead of a second forward pass over the batch.

Advantage standardisation: RLlib's GAE connector standardises advantages over the whole
train batch. With ``learner_config_dict[ADVANTAGE_NORM_CONFIG] == "minibatch"``
(``training.advantage_norm``) each minibatch's advantages are standardised again over its own
real rows before the PPO loss, as SB3 and CleanRL do: every update then sees advantages of
mean 0 and scale 1, however the returns of its rows happen to fall.

Policy lag: with ``learner_config_dict[PROXIMAL_RHO_CONFIG] > 0`` (set by ``build_ppo_config``
for ``training.overlap_sampling``) the clip is centred on the Learner's own policy and the
batch's (older) sampling policy is importance-weighted: decoupled PPO, see
``models/proximal_policy.py``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ray.rllib.algorithms.ppo.ppo import PPOConfig
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner.add_one_ts_to_episodes_and_truncate import (
    AddOneTsToEpisodesAndTruncate,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType

from mmrlhf.models.advantages import standardize_advantages
from mmrlhf.models.bootstrap_rows import AddBootstrapTimesteps, DropBootstrapRows
from mmrlhf.models.contrastive import content_ids, info_nce
from mmrlhf.models.gradients import all_finite, clip_gradients
from mmrlhf.models.multimodal import IMAGE_EMBEDDINGS, TEXT_EMBEDDINGS
from mmrlhf.models.proximal_policy import ProximalPolicyCorrection

logger = logging.getLogger(__name__)

CONTRASTIVE_LOSS_KEY = "contrastive_loss"
# learner_config_dict keys of the KL penalty toward a reference policy.
KL_COEFF_CONFIG = "mmrlhf_kl_coeff"
KL_REFERENCE_CONFIG = "mmrlhf_kl_reference"
# learner_config_dict key of decoupled weight decay (AdamW instead of Adam when > 0).
WEIGHT_DECAY_CONFIG = "mmrlhf_weight_decay"
# learner_config_dict key: truncation of decoupled PPO's importance weight (0/absent = off).
PROXIMAL_RHO_CONFIG = "mmrlhf_proximal_rho_max"
# learner_config_dict key: batches are sampled with the Learner's current weights, so GAE can
# reuse the values the EnvRunners computed while acting (see MultimodalModel.compute_values).
SAMPLED_VALUES_CONFIG = "mmrlhf_reuse_sampled_values"
# learner_config_dict key: where advantages are standardised, "batch" (RLlib's GAE, the
# default) or "minibatch" (again over each minibatch's real rows before the loss).
ADVANTAGE_NORM_CONFIG = "mmrlhf_advantage_norm"
ADVANTAGE_NORM_CHOICES = ("batch", "minibatch")
# Metric keys (under result["learners"][module_id]).
KL_KEY = "feedback/kl"
KL_COEFF_KEY = "feedback/kl_coeff"
# Where an algorithm checkpoint keeps the policy module.
MODULE_SUBPATH = Path("learner_group") / "learner" / "rl_module" / "default_policy"


def categorical_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row for categorical distributions given by logits (B, n) -> (B,)."""
    logp = F.log_softmax(logits, dim=-1)
    logq = F.log_softmax(ref_logits, dim=-1)
    return (logp.exp() * (logp - logq)).sum(dim=-1)


def load_reference_module(path: str | Path) -> RLModule:
    """The policy module of an algorithm checkpoint or a module directory, frozen."""
    root = Path(path).resolve()
    module_dir = root / MODULE_SUBPATH if (root / MODULE_SUBPATH).is_dir() else root
    if not module_dir.is_dir():
        raise FileNotFoundError(f"KL reference checkpoint {str(root)!r} not found")
    return RLModule.from_checkpoint(str(module_dir))


class MultimodalPPOLearner(PPOTorchLearner):
    """``PPOTorchLearner`` plus the InfoNCE auxiliary loss of ``MultimodalModel`` and an
    optional KL penalty toward a frozen reference policy."""

    # Set by `build` from `learner_config_dict`.
    _advantage_norm: str = "batch"

    @override(PPOTorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config: Any = None) -> None:
        """RLlib's Adam, or AdamW when ``training.weight_decay`` > 0 (same lr schedule).

        Both use torch's multi-tensor (``foreach``) step, which CPU builds do not pick by
        default: one batched call per op instead of a loop over the parameters.
        """
        extra = self.config.learner_config_dict or {}
        weight_decay = float(extra.get(WEIGHT_DECAY_CONFIG, 0.0) or 0.0)
        params = self.get_parameters(self._module[module_id])
        optimizer = (
            torch.optim.AdamW(params, weight_decay=weight_decay, foreach=True)
            if weight_decay > 0.0
            else torch.optim.Adam(params, foreach=True)
        )
        self.register_optimizer(
            module_id=module_id,
            optimizer=optimizer,
            params=params,
            lr_or_lr_schedule=(config or self.config).lr,
        )

    @staticmethod
    @override(PPOTorchLearner)
    def _get_clip_function() -> Callable:
        """Global-norm clipping in batched calls (`models/gradients.py`)."""
        return clip_gradients

    @override(PPOTorchLearner)
    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        """Step the optimizers; one finiteness check for all gradients instead of RLlib's
        two per parameter. Anything unusual (a NaN/inf gradient, grad scalers, torch lr
        schedulers, `torch_skip_nan_gradients`) takes RLlib's path, warnings included."""
        if (
            self._grad_scalers is not None
            or self._lr_scheduler_classes is not None
            or self.config.torch_skip_nan_gradients
            or not all_finite([g for g in gradients_dict.values() if g is not None])
        ):
            super().apply_gradients(gradients_dict)
            return
        for ref, grad in gradients_dict.items():
            self._params[ref].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()

    @override(PPOTorchLearner)
    def build(self) -> None:
        """Build as PPO does, with bootstrap rows only where GAE reads them
        (`AddBootstrapTimesteps`), `DropBootstrapRows` after GAE and decoupled PPO's
        `ProximalPolicyCorrection` if asked for; then freeze a reference policy if the KL
        penalty is on."""
        super().build()
        if (
            self._learner_connector is not None
            and self.config.add_default_connectors_to_learner_pipeline
        ):
            pipeline = self._learner_connector
            if AddOneTsToEpisodesAndTruncate in [type(piece) for piece in pipeline.connectors]:
                pipeline.insert_before(AddOneTsToEpisodesAndTruncate, AddBootstrapTimesteps())
                pipeline.remove(AddOneTsToEpisodesAndTruncate)
            pipeline.append(DropBootstrapRows())
        extra = self.config.learner_config_dict or {}
        reuse = bool(extra.get(SAMPLED_VALUES_CONFIG, False))
        for wrapped in self.module.values():
            module = wrapped.unwrapped()
            if hasattr(module, "reuse_sampled_values"):
                module.reuse_sampled_values = reuse
        self._advantage_norm = str(extra.get(ADVANTAGE_NORM_CONFIG) or "batch")
        if self._advantage_norm not in ADVANTAGE_NORM_CHOICES:
            raise ValueError(
                f"{ADVANTAGE_NORM_CONFIG}={self._advantage_norm!r}: allowed are "
                f"{', '.join(map(repr, ADVANTAGE_NORM_CHOICES))}"
            )
        rho_max = float(extra.get(PROXIMAL_RHO_CONFIG, 0.0) or 0.0)
        if rho_max > 0.0 and self._learner_connector is not None:
            self._learner_connector.append(ProximalPolicyCorrection(rho_max=rho_max))
        self._kl_coeff = float(extra.get(KL_COEFF_CONFIG, 0.0) or 0.0)
        self._reference: dict[ModuleID, RLModule] = {}
        if self._kl_coeff <= 0.0:
            return
        path = extra.get(KL_REFERENCE_CONFIG)
        for module_id, wrapped in self.module.items():
            # Built before any update, so a copy now is the initial policy.
            module = wrapped.unwrapped()
            ref = load_reference_module(path) if path else copy.deepcopy(module)
            device = next(module.parameters()).device
            ref = ref.to(device).eval()
            for param in ref.parameters():
                param.requires_grad_(False)
            # A plain dict keeps the reference out of the learner's state and optimizer.
            self._reference[module_id] = ref
        logger.info("KL penalty %.4g toward %s", self._kl_coeff, path or "the initial policy")

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config: PPOConfig,
        batch: dict[str, Any],
        fwd_out: dict[str, TensorType],
    ) -> TensorType:
        """PPO loss (on minibatch-standardised advantages if asked for) plus
        ``contrastive_weight * InfoNCE`` when the module asks for it."""
        if self._advantage_norm == "minibatch":
            mask = batch[Columns.LOSS_MASK].bool() if Columns.LOSS_MASK in batch else None
            # A new dict: the minibatch's tensors may be views of the whole train batch.
            batch = {
                **batch,
                Postprocessing.ADVANTAGES: standardize_advantages(
                    batch[Postprocessing.ADVANTAGES], mask
                ),
            }
        total_loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )
        module = self.module[module_id].unwrapped()
        if getattr(self, "_kl_coeff", 0.0) > 0.0 and module_id in self._reference:
            kl = self._reference_kl(module_id, batch, fwd_out)
            self.metrics.log_value((module_id, KL_KEY), kl.detach(), window=1)
            self.metrics.log_value((module_id, KL_COEFF_KEY), self._kl_coeff, window=1)
            total_loss = total_loss + self._kl_coeff * kl
        weight = float(getattr(module, "contrastive_weight", 0.0))
        if weight <= 0.0 or IMAGE_EMBEDDINGS not in fwd_out:
            return total_loss
        loss = self._contrastive_loss(module, batch, fwd_out)
        if loss is None:
            return total_loss
        self.metrics.log_value((module_id, CONTRASTIVE_LOSS_KEY), loss.detach(), window=1)
        return total_loss + weight * loss

    def _reference_kl(
        self, module_id: ModuleID, batch: dict[str, Any], fwd_out: dict[str, TensorType]
    ) -> torch.Tensor:
        """Mean KL(pi || pi_ref) over the real rows of the batch."""
        with torch.no_grad():
            ref_logits = self._reference[module_id].forward_inference(batch)[
                Columns.ACTION_DIST_INPUTS
            ]
        kl = categorical_kl(fwd_out[Columns.ACTION_DIST_INPUTS], ref_logits)
        if Columns.LOSS_MASK in batch:
            mask = batch[Columns.LOSS_MASK].bool()
            return kl[mask].sum() / mask.sum().clamp(min=1)
        return kl.mean()

    @staticmethod
    def _contrastive_loss(
        module: RLModule, batch: dict[str, Any], fwd_out: dict[str, TensorType]
    ) -> torch.Tensor | None:
        image_emb, text_emb = fwd_out[IMAGE_EMBEDDINGS], fwd_out[TEXT_EMBEDDINGS]
        obs = batch[Columns.OBS]
        images, texts = obs["image"], obs["text"]
        # Real rows only: text present and not one of PPO's artificial bootstrap steps.
        keep = (texts != 0).any(dim=-1)
        if Columns.LOSS_MASK in batch:
            keep = keep & batch[Columns.LOSS_MASK].bool()
        if int(keep.sum()) < 2:
            return None
        image_ids = content_ids(images[keep])
        text_ids = content_ids(texts[keep])
        if int(image_ids.max()) < 1 or int(text_ids.max()) < 1:
            return None  # a single distinct image or text: nothing to contrast against
        return info_nce(
            image_emb[keep],
            text_emb[keep],
            temperature=module.mm_config.contrastive_temperature,
            image_ids=image_ids,
            text_ids=text_ids,
        )

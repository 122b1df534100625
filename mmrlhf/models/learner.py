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
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from ray.rllib.algorithms.ppo.ppo import PPOConfig
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from mmrlhf.models.contrastive import content_ids, info_nce
from mmrlhf.models.multimodal import IMAGE_EMBEDDINGS, TEXT_EMBEDDINGS

logger = logging.getLogger(__name__)

CONTRASTIVE_LOSS_KEY = "contrastive_loss"


class MultimodalPPOLearner(PPOTorchLearner):
    """``PPOTorchLearner`` plus the InfoNCE auxiliary loss of ``MultimodalModel``."""

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self,
        *,
        module_id: ModuleID,
        config: PPOConfig,
        batch: dict[str, Any],
        fwd_out: dict[str, TensorType],
    ) -> TensorType:
        """PPO loss plus ``contrastive_weight * InfoNCE`` when the module asks for it."""
        total_loss = super().compute_loss_for_module(
            module_id=module_id, config=config, batch=batch, fwd_out=fwd_out
        )
        module = self.module[module_id].unwrapped()
        weight = float(getattr(module, "contrastive_weight", 0.0))
        if weight <= 0.0 or IMAGE_EMBEDDINGS not in fwd_out:
            return total_loss
        loss = self._contrastive_loss(module, batch, fwd_out)
        if loss is None:
            return total_loss
        self.metrics.log_value((module_id, CONTRASTIVE_LOSS_KEY), loss.detach(), window=1)
        return total_loss + weight * loss

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

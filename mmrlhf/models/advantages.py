"""Advantage standardisation, shared by the Learner's pipeline and its loss."""

from __future__ import annotations

import torch


def standardize_advantages(
    advantages: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Advantages shifted and scaled to mean 0 and standard deviation 1 over the rows in
    `mask` (all rows if None); rows outside it are left as they are. The scale is floored at
    1e-4, as RLlib's GAE connector floors it, so equal advantages become zeros."""
    rows = advantages if mask is None else advantages[mask]
    if rows.numel() == 0:
        return advantages
    scaled = (advantages - rows.mean()) / rows.std(unbiased=False).clamp(min=1e-4)
    return scaled if mask is None else torch.where(mask, scaled, advantages)

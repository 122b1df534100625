"""DropBootstrapRows: PPO's artificial rows leave the train batch after GAE."""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from mmrlhf.models.bootstrap_rows import DropBootstrapRows

ADV = Postprocessing.ADVANTAGES


def test_drops_masked_rows_of_every_column_and_restandardises_advantages() -> None:
    mask = torch.tensor([True, False, True, False, True, False])
    batch = {
        "default_policy": {
            Columns.OBS: {"image": torch.arange(6)[:, None].repeat(1, 3), "text": torch.arange(6)},
            Columns.ACTIONS: torch.tensor([5, 0, 6, 0, 7, 0]),
            ADV: torch.tensor([1.0, 9.0, 2.0, -9.0, 3.0, 0.0]),
            Columns.LOSS_MASK: mask,
            "scalar": 3.0,
        }
    }
    out = DropBootstrapRows()(rl_module=None, batch=batch, episodes=[])["default_policy"]
    assert Columns.LOSS_MASK not in out
    assert out[Columns.OBS]["text"].tolist() == [0, 2, 4]
    assert out[Columns.OBS]["image"].shape == (3, 3)
    assert out[Columns.ACTIONS].tolist() == [5, 6, 7]
    torch.testing.assert_close(out[ADV], torch.tensor([-1.0, 0.0, 1.0]) * 1.5**0.5)
    assert out["scalar"] == 3.0


def test_batches_without_masked_rows_are_left_alone() -> None:
    adv = torch.tensor([1.0, 2.0])
    batch = {"p": {ADV: adv, Columns.LOSS_MASK: torch.tensor([True, True])}}
    out = DropBootstrapRows()(rl_module=None, batch=batch, episodes=[])["p"]
    assert out[Columns.LOSS_MASK].all() and out[ADV] is adv
    unmasked = {"p": {ADV: adv}}
    assert DropBootstrapRows()(rl_module=None, batch=unmasked, episodes=[])["p"][ADV] is adv

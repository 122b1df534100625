"""The reward-model losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from mmrlhf.feedback.losses import (
    PAD_RANK,
    binary_loss,
    bradley_terry_loss,
    plackett_luce_loss,
    rating_loss,
)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_bradley_terry_hand_values() -> None:
    # a preferred, r_a - r_b = 1: -log s(1) = log(1 + e^-1)
    assert bradley_terry_loss(t(2.0), t(1.0), t(1.0)).item() == pytest.approx(
        math.log(1 + math.exp(-1))
    )
    # b preferred with the same rewards: -log s(-1) = log(1 + e)
    assert bradley_terry_loss(t(2.0), t(1.0), t(0.0)).item() == pytest.approx(math.log(1 + math.e))
    # tie: half of each
    tie = 0.5 * (math.log(1 + math.exp(-1)) + math.log(1 + math.e))
    assert bradley_terry_loss(t(2.0), t(1.0), t(0.5)).item() == pytest.approx(tie)
    # equal rewards: log 2 whatever the label; the batch is averaged
    batch = bradley_terry_loss(t(0.0, 2.0), t(0.0, 1.0), t(1.0, 1.0)).item()
    assert batch == pytest.approx((math.log(2) + math.log(1 + math.exp(-1))) / 2)


def test_plackett_luce_hand_values() -> None:
    # scores (3, 1, 0) in the order ranked: -log(e^3/(e^3+e^1+e^0)) - log(e^1/(e^1+e^0))
    expected = -math.log(math.exp(3) / (math.exp(3) + math.e + 1)) - math.log(math.e / (math.e + 1))
    loss = plackett_luce_loss(t(3.0, 1.0, 0.0)[None], torch.tensor([[0, 1, 2]]))
    assert loss.item() == pytest.approx(expected)
    # the same ranking with the items listed in another order
    loss = plackett_luce_loss(t(0.0, 3.0, 1.0)[None], torch.tensor([[2, 0, 1]]))
    assert loss.item() == pytest.approx(expected)


def test_plackett_luce_reduces_to_bradley_terry_for_pairs() -> None:
    scores = t(0.3, -1.2)[None]
    bt = bradley_terry_loss(t(0.3), t(-1.2), t(1.0))
    assert plackett_luce_loss(scores, torch.tensor([[0, 1]])).item() == pytest.approx(bt.item())
    # a 2-way tie (Breslow) is twice the Bradley-Terry loss of p = 0.5
    bt_tie = bradley_terry_loss(t(0.3), t(-1.2), t(0.5))
    tie = plackett_luce_loss(scores, torch.tensor([[0, 0]]))
    assert tie.item() == pytest.approx(2 * bt_tie.item())


def test_plackett_luce_ties_and_padding() -> None:
    # best item 2.0, then a tie of 1.0 and 0.0 (Breslow): both tied items share the choice set
    # {1.0, 0.0}; the best item's choice set is all three.
    lse_all = math.log(math.exp(2) + math.e + 1)
    lse_tied = math.log(math.e + 1)
    expected = (lse_all - 2) + (lse_tied - 1) + (lse_tied - 0)
    loss = plackett_luce_loss(t(2.0, 1.0, 0.0)[None], torch.tensor([[0, 1, 1]]))
    assert loss.item() == pytest.approx(expected)
    # a padded slot changes nothing, whatever its score
    padded = plackett_luce_loss(t(2.0, 1.0, 0.0, 99.0)[None], torch.tensor([[0, 1, 1, PAD_RANK]]))
    assert padded.item() == pytest.approx(expected)


def test_rating_and_binary_hand_values() -> None:
    assert rating_loss(t(0.5, 1.0), t(1.0, 1.0)).item() == pytest.approx(0.125)
    # logistic: -log s(0) = log 2 for a positive at 0; -log(1 - s(2)) = log(1 + e^2)
    loss = binary_loss(t(0.0, 2.0), t(1.0, 0.0)).item()
    assert loss == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2)


def test_losses_have_gradients_that_order_rewards() -> None:
    r = torch.zeros(3, requires_grad=True)
    plackett_luce_loss(r[None], torch.tensor([[0, 1, 2]])).backward()
    assert r.grad is not None and r.grad[0] < 0 < r.grad[2]  # descent raises the best

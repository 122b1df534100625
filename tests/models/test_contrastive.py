"""InfoNCE against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mmrlhf.models.contrastive import content_ids, info_nce


def test_matches_hand_computed_two_by_two() -> None:
    # Unit vectors: image0 = e0, image1 = e1; text0 = e0, text1 = (e0 + e1)/sqrt(2).
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [1.0, 1.0]])  # normalised inside
    t = 0.5
    c = 1 / math.sqrt(2)
    sims = [[1.0, c], [0.0, c]]  # sims[i][j] = cos(image_i, text_j)
    z = [[s / t for s in row] for row in sims]

    def ce(row: list[float], target: int) -> float:
        return -row[target] + math.log(sum(math.exp(v) for v in row))

    image_to_text = (ce(z[0], 0) + ce(z[1], 1)) / 2
    cols = [[z[0][j], z[1][j]] for j in range(2)]
    text_to_image = (ce(cols[0], 0) + ce(cols[1], 1)) / 2
    expected = (image_to_text + text_to_image) / 2
    assert info_nce(image, text, temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_aligned_pairs_give_near_zero_loss_and_shuffled_pairs_do_not() -> None:
    emb = torch.eye(4)
    assert info_nce(emb, emb, temperature=0.01).item() < 1e-6
    assert info_nce(emb, emb[[1, 0, 3, 2]], temperature=0.01).item() > 10


def test_duplicates_are_not_negatives() -> None:
    # Rows 0 and 2 are the same (image, text) pair, as consecutive RL steps often are.
    emb = torch.eye(3)[[0, 1, 0]]
    ids = content_ids(torch.tensor([[7, 7], [8, 8], [7, 7]]))
    assert ids[0] == ids[2] != ids[1]
    # As negatives, the duplicates tie with the positive: rows 0 and 2 cost ~ln 2 each way.
    plain = info_nce(emb, emb, temperature=0.01)
    assert plain.item() == pytest.approx(2 * math.log(2) / 3, rel=1e-3)
    # Masked out, every row has one clear positive left.
    assert info_nce(emb, emb, 0.01, image_ids=ids, text_ids=ids).item() < 1e-6
    # Masking by the image ids alone is enough (a repeated image, different questions).
    assert info_nce(emb, emb, 0.01, image_ids=ids).item() < 1e-6


def test_gradient_flows_and_bad_inputs_raise() -> None:
    image = torch.randn(4, 6, requires_grad=True)
    info_nce(image, torch.randn(4, 6)).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.randn(2, 3), torch.randn(2, 3), temperature=0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        info_nce(torch.randn(2, 3), torch.randn(3, 3))

"""InfoNCE against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmrlhf.models.contrastive import (
    content_ids,
    info_nce,
    info_nce_from_scores,
    token_match_scores,
)


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


def test_token_match_scores_match_hand_computed_values() -> None:
    # Text 0: tokens e0 and e1 (both real); text 1: token e1 and a padding token.
    text = torch.tensor([[[1.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    # Image 0: patches e0 and (e0 + e1)/sqrt(2); image 1: one patch -e1, one patch e1.
    image = torch.tensor([[[2.0, 0.0], [1.0, 1.0]], [[0.0, -1.0], [0.0, 1.0]]])
    c = 1 / math.sqrt(2)
    expected = torch.tensor(
        [
            [(1.0 + c) / 2, c],  # image 0: e0 finds e0 (1), e1 finds the diagonal (c)
            [(0.0 + 1.0) / 2, 1.0],  # image 1: e0 is orthogonal to both, e1 finds e1
        ]
    )
    scores = token_match_scores(text, mask, image)
    assert torch.allclose(scores, expected, atol=1e-6)
    # The padding token (5, 5) would have matched image 0's diagonal patch perfectly.
    assert scores[0, 1] < 0.99


def test_token_info_nce_prefers_the_image_holding_every_word() -> None:
    # Two texts naming different patches; each image holds one text's words in some patch.
    text = torch.eye(4)[torch.tensor([[0, 1], [2, 3]])]
    mask = torch.ones(2, 2, dtype=torch.bool)
    image = torch.eye(4)[torch.tensor([[1, 0, 0], [3, 2, 2]])]  # patch order does not matter
    scores = token_match_scores(text, mask, image)
    assert torch.allclose(scores, torch.eye(2))
    assert info_nce_from_scores(scores / 0.01).item() < 1e-6
    assert info_nce_from_scores(scores.flip(0) / 0.01).item() > 10


def test_info_nce_from_scores_agrees_with_info_nce_and_checks_shapes() -> None:
    image, text = torch.randn(5, 3), torch.randn(5, 3)
    ids = content_ids(torch.tensor([[1], [2], [1], [3], [4]]))
    logits = F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / 0.2
    assert info_nce_from_scores(logits, image_ids=ids).item() == pytest.approx(
        info_nce(image, text, 0.2, image_ids=ids).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="square"):
        info_nce_from_scores(torch.randn(2, 3))
    with pytest.raises(ValueError, match="must agree"):
        token_match_scores(torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool),
                           torch.randn(2, 5, 6))  # fmt: skip

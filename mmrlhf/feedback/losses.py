"""Reward-model training losses: one function per kind of human signal, plain torch.

Every function takes reward-model outputs (any real numbers, one per episode) and the labels,
and returns the mean loss over the batch (a 0-dim tensor). They are written out so each can be
checked by hand:

================  =====================================================================
kind              loss for one example
================  =====================================================================
preference        Bradley-Terry: -[p log s(ra - rb) + (1 - p) log s(rb - ra)],
                  s = sigmoid, p = P(a preferred) in {1, 0, 0.5 (tie)}
ranking (k > 2)   Plackett-Luce with ties (Breslow): for every rank tier t,
                  sum_{i in t} [log sum_{j: rank_j >= rank_i} exp(r_j) - r_i]
rating            regression: (r - y)^2, y = the rating mapped to [0, 1]
binary/implicit   logistic: -[y log s(r) + (1 - y) log(1 - s(r))], y in {0, 1}
binary, r a       Bernoulli with P(good) = exp(r): -[y r + (1 - y) log(1 - exp(r))]
log-probability   (the reward model's answer_logits head, whose reward is log p(answer))
================  =====================================================================

Bradley-Terry and Plackett-Luce only see differences of rewards, so they leave the reward's
offset free; the rating and binary losses pin it (they can be mixed in one batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Rank value that marks an empty slot in a padded ranking (fewer than k items).
PAD_RANK = -1


def bradley_terry_loss(r_a: torch.Tensor, r_b: torch.Tensor, p_a: torch.Tensor) -> torch.Tensor:
    """Mean Bradley-Terry cross-entropy of pairwise preferences.

    Args:
        r_a: Rewards of the first episodes, shape (B,).
        r_b: Rewards of the second episodes, shape (B,).
        p_a: Probability that `a` is preferred, shape (B,): 1 = a, 0 = b, 0.5 = tie.
    """
    d = r_a - r_b
    # logsigmoid is the numerically stable log s(x); log s(-d) = log(1 - s(d)).
    return -(p_a * F.logsigmoid(d) + (1.0 - p_a) * F.logsigmoid(-d)).mean()


def plackett_luce_loss(scores: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of rankings under Plackett-Luce, ties by Breslow.

    `ranks[b, i]` is item i's place in ranking b: 0 = best, equal values are ties, `PAD_RANK`
    (-1) = no item in this slot (rankings of different lengths in one batch). An item's choice
    set is every item ranked the same or worse, so without ties this is exactly
    Plackett-Luce: -sum_i log(exp(r_(i)) / sum_{j >= i} exp(r_(j))) over the sorted items; for
    k = 2 and a strict order it equals the Bradley-Terry loss (a 2-way tie gives twice the
    Bradley-Terry loss of p_a = 0.5).

    Args:
        scores: Rewards, shape (B, k).
        ranks: Integer ranks, shape (B, k).
    """
    valid = ranks != PAD_RANK  # (B, k)
    # in_set[b, i, j]: item j is in item i's choice set (ranked the same as i or worse).
    in_set = (ranks.unsqueeze(1) >= ranks.unsqueeze(2)) & valid.unsqueeze(1) & valid.unsqueeze(2)
    expanded = scores.unsqueeze(1).expand(-1, scores.shape[1], -1)
    masked = expanded.masked_fill(~in_set, float("-inf"))
    log_denominator = torch.logsumexp(masked, dim=-1)  # (B, k)
    # An item that is alone in its choice set (a single worst item) contributes 0.
    nll = torch.where(valid, log_denominator - scores, torch.zeros_like(scores))
    return nll.sum(dim=1).mean()


def rating_loss(r: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between rewards (B,) and ratings in [0, 1] (B,)."""
    return F.mse_loss(r, target)


def binary_loss(r: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss of rewards (B,) as logits of binary/implicit labels in {0, 1} (B,)."""
    return F.binary_cross_entropy_with_logits(r, target)


def log_prob_binary_loss(log_p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Bernoulli loss of binary labels in {0, 1} (B,) for rewards that are
    log-probabilities (B,) (<= 0) of being good: -[y log p + (1 - y) log(1 - p)].

    A logistic loss on a log-probability caps P(good) at sigmoid(0) = 1/2; this one reads the
    reward as the probability it is. log(1 - p) is computed as log(-expm1(log p)), exact for
    small p, and clamped just below p = 1 so a certain answer costs a large finite loss.
    """
    log_p = log_p.clamp(max=-1e-6)
    log_not = torch.log(-torch.expm1(log_p))
    return -(target * log_p + (1.0 - target) * log_not).mean()

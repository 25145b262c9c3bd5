"""Scoring metrics for lapse predictions, in plain numpy (no scikit-learn dependency).

Conventions: ``labels`` are 1 for the event (the customer lapsed) and 0 otherwise; ``scores`` rank
customers so that higher means more likely to have the event.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["average_ranks", "brier_score", "precision_at_top", "roc_auc"]


def _labels_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError("labels and scores must have the same length")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0 or 1")
    if np.any(np.isnan(s)):
        raise ValueError("scores contain NaN")
    return y.astype(bool), s


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (like ``scipy.stats.rankdata``)."""
    v = np.asarray(values, dtype=float).ravel()
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(v.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic.

    The probability that a random positive scores above a random negative, ties counting one half, so a
    constant score gives exactly 0.5. Raises ``ValueError`` if only one class is present.
    """
    y, s = _labels_scores(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    rank_sum = float(average_ranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error of predicted probabilities: rewards calibration as well as ranking."""
    y, p = _labels_scores(labels, probs)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be within [0, 1]")
    return float(np.mean((p - y) ** 2))


def precision_at_top(labels: np.ndarray, scores: np.ndarray, share: float = 0.2) -> float:
    """Share of positives among the ``round(share * n)`` highest-scored customers (at least one).

    Ties across the cut-off are resolved by expectation, as if broken at random: the tied group contributes
    its positive rate for the places left. Coarse scores (recency in days, RFM sums) are thus neither
    flattered nor penalised by the order the rows happen to be in.
    """
    if not 0 < share <= 1:
        raise ValueError("share must be in (0, 1]")
    y, s = _labels_scores(labels, scores)
    if y.size == 0:
        raise ValueError("no customers")
    k = max(1, min(y.size, int(math.floor(share * y.size + 0.5))))
    threshold = np.sort(s)[::-1][k - 1]
    above = s > threshold
    tied = s == threshold
    places_left = k - int(above.sum())
    positives = float(y[above].sum()) + places_left * float(y[tied].mean())
    return positives / k

"""RFM scoring and the score-to-segment grid (pure numpy; no Django).

Scores are quintiles, 5 = best: bought most recently, most orders, most spent. A value's
score is the quintile of the middle of the rank span its ties occupy (window functions in
SQL over the programme's buyers give, per score, the smallest value that earns it); each
customer is then scored against those bounds, so equal values always get equal scores, also
when a large programme is refreshed in chunks.

The segment is read from a grid of the recency score R and FM = (F + M) / 2 rounded up,
as Shopify's customer report does with its eleven RFM groups. Members who never bought
are "prospects" and have no scores.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# R (rows, 5 = most recent) x FM (columns). Keys are "R,FM".
_ROWS = {
    5: ["new", "new", "active", "champions", "champions"],
    4: ["promising", "promising", "active", "loyal", "champions"],
    3: ["needs_attention", "needs_attention", "needs_attention", "loyal", "loyal"],
    2: ["almost_lost", "almost_lost", "at_risk", "at_risk", "previously_loyal"],
    1: ["dormant", "dormant", "almost_lost", "previously_loyal", "previously_loyal"],
}
DEFAULT_GRID: dict[str, str] = {f"{r},{fm}": seg for r, row in _ROWS.items() for fm, seg in enumerate(row, start=1)}
PROSPECTS = "prospects"


def quintile_scores(values: np.ndarray, lower_bounds: Mapping[int | str, float]) -> np.ndarray:
    """Score each value 1-5 from the smallest value that earns each score.

    ``lower_bounds`` maps a score to the smallest value with that score (scores that no value
    earned are absent). Values below every bound get the lowest score present.
    """
    values = np.asarray(values, dtype=float)
    if not lower_bounds:
        return np.ones(values.shape, dtype=int)
    pairs = sorted((float(bound), int(score)) for score, bound in lower_bounds.items())
    bounds = np.array([bound for bound, _ in pairs])
    scores = np.array([score for _, score in pairs])
    index = np.searchsorted(bounds, values, side="right") - 1
    return scores[np.clip(index, 0, len(scores) - 1)]


def midpoint_quintile(less: np.ndarray, equal: np.ndarray, total: int) -> np.ndarray:
    """The quintile (1-5) of the middle of the rank span a value's ties occupy.

    ``less``: how many values are smaller; ``equal``: how many are equal. Equal values share
    a score, and a small programme still spreads its customers over the scale (two customers
    score 2 and 4, not 1 and 2). The SQL in ``services.health`` computes the same thing.
    """
    middle = np.asarray(less, dtype=float) + np.asarray(equal, dtype=float) / 2
    return np.minimum(5, 1 + np.floor(5 * middle / total)).astype(int)


def fm_scores(f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(F + M) / 2, halves rounded up: a customer strong on either side is not pulled down."""
    return (np.asarray(f, dtype=int) + np.asarray(m, dtype=int) + 1) // 2


def segments_for(r: np.ndarray, fm: np.ndarray, grid: Mapping[str, str] | None = None) -> np.ndarray:
    """Look up each (R, FM) pair in the grid; cells missing from a custom grid fall back to the default."""
    table = np.empty((6, 6), dtype=object)
    table[:] = PROSPECTS
    merged = {**DEFAULT_GRID, **(grid or {})}
    for key, segment in merged.items():
        r_key, fm_key = (int(part) for part in key.split(","))
        table[r_key, fm_key] = segment
    return table[np.asarray(r, dtype=int), np.asarray(fm, dtype=int)]


def validate_grid(grid: Mapping[str, str], allowed: set[str]) -> list[str]:
    """Problems with a staff-edited grid (empty list when it is fine)."""
    problems = []
    for key, segment in grid.items():
        parts = key.split(",")
        if len(parts) != 2 or not all(p.strip().isdigit() and 1 <= int(p) <= 5 for p in parts):
            problems.append(f'"{key}" is not an "R,FM" pair of scores 1-5')
        if segment not in allowed:
            problems.append(f'"{key}": unknown segment "{segment}"')
    return problems

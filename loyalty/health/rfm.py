"""RFM scoring and the score-to-segment grid (pure numpy; no Django).

Scores are quintiles, 5 = best: bought most recently, most orders, most spent. The
breakpoints come from SQL (``NTILE(5)`` over the programme's buyers); each customer is
then scored against them, so equal values always get equal scores, also when a large
programme is refreshed in chunks.

The segment is read from a grid of the recency score R and FM = (F + M) / 2 rounded up,
as Shopify's customer report does with its eleven RFM groups. Members who never bought
are "prospects" and have no scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def quintile_scores(values: np.ndarray, upper_bounds: Sequence[float], *, higher_is_better: bool = True) -> np.ndarray:
    """Score each value 1-5 against the upper bounds of the lower four quintiles.

    ``upper_bounds`` are the largest values in NTILE buckets 1-4 (ascending). A value at or
    below bound i falls in bucket i + 1. With ``higher_is_better=False`` (days since last
    order) the scale is turned round so 5 is still best.
    """
    values = np.asarray(values, dtype=float)
    bounds = np.asarray(list(upper_bounds)[:4], dtype=float)
    buckets = np.searchsorted(bounds, values, side="left") + 1  # 1..5
    buckets = np.clip(buckets, 1, 5)
    return buckets if higher_is_better else 6 - buckets


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

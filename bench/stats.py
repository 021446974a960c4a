"""Summaries of samples: pure functions."""

from __future__ import annotations

import math
from typing import Sequence


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` between 0 and 1) of non-empty `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """n, p50, p90, p99, max and mean of `values` (empty: just n = 0)."""
    if not values:
        return {"n": 0}
    return {"n": len(values), **{name: round(percentile(values, share), digits)
                                 for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
            "max": round(max(values), digits), "mean": round(sum(values) / len(values), digits)}


def slope_through_origin(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of y = k x."""
    return sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)

"""Percentiles and small summaries of latency samples (nanoseconds in, milliseconds out)."""

from __future__ import annotations

import math
from typing import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `samples` (fraction in 0..1); NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def latency_summary_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50, p99 and max of nanosecond samples, in milliseconds."""
    millis = [value / 1e6 for value in samples_ns]
    return {
        "count": len(millis),
        "p50_ms": round(percentile(millis, 0.50), 3),
        "p99_ms": round(percentile(millis, 0.99), 3),
        "max_ms": round(max(millis), 3) if millis else math.nan,
    }


def ratio(value: float | None, baseline: float | None) -> float:
    """value / baseline rounded to 3 places; NaN when either is missing or the baseline is zero."""
    if value is None or not baseline or math.isnan(baseline) or math.isnan(value):
        return math.nan
    return round(value / baseline, 3)

"""Summary statistics for boot times, computed over every counted run.

The 95% confidence interval of the median is distribution-free: the pair of order
statistics whose coverage, from the binomial(n, 1/2) distribution, is at least 95%.
It needs n >= 6; below that it is None rather than a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    min: float
    median: float
    mean: float
    stddev: float | None  # sample standard deviation (n - 1); None for n < 2
    p95: float
    max: float
    ci95_median: tuple[float, float] | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def sample_stddev(values: list[float]) -> float | None:
    """Two-pass sample standard deviation: stable when values are large and close."""
    if len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def median_ci(sorted_values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    n = len(sorted_values)
    cdf = [0.0]
    for k in range(n + 1):
        cdf.append(cdf[-1] + math.comb(n, k) / 2**n)
    # Widest-first search for the narrowest symmetric (j, n-1-j) with enough coverage.
    for j in range(n // 2, -1, -1):
        # Coverage of [x_(j), x_(n-1-j)] (0-based) is P(j < B <= n-1-j), B ~ Bin(n, 1/2).
        coverage = cdf[n - j] - cdf[j + 1]
        if coverage >= confidence:
            return (sorted_values[j], sorted_values[n - 1 - j])
    return None


def summarize(values: list[float]) -> Summary | None:
    if not values:
        return None
    ordered = sorted(values)
    return Summary(
        n=len(ordered),
        min=ordered[0],
        median=quantile(ordered, 0.5),
        mean=math.fsum(ordered) / len(ordered),
        stddev=sample_stddev(ordered),
        p95=quantile(ordered, 0.95),
        max=ordered[-1],
        ci95_median=median_ci(ordered),
    )

"""Summary statistics for boot times, computed over every counted run.

Two 95% intervals of the median are given: a percentile bootstrap (seeded, so the same
data always gives the same interval), and the distribution-free pair of order statistics
whose binomial(n, 1/2) coverage is at least 95% (it needs n >= 6; below that it is None
rather than a made-up number). Outliers are flagged by Tukey's fences, never dropped.
Comparisons use a bootstrap interval of the ratio of medians and a permutation test;
`holm` is the step-down correction that keeps several of them honest together.
"""

from __future__ import annotations

import math
import random
import statistics
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
    ci95_median: tuple[float, float] | None  # bootstrap
    ci95_median_order: tuple[float, float] | None  # order statistics (exact coverage)
    outliers: tuple[int, ...]  # positions in the input that lie outside Tukey's fences

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
    """The distribution-free interval of the median from order statistics: the narrowest
    symmetric [x_(j), x_(n-1-j)] that covers it with CONFIDENCE. O(n): the binomial's
    probabilities come from log-gamma in floats (exact big integers grew as n^2 and took
    50 s for 10,000 values)."""
    n = len(sorted_values)
    if n == 0:
        return None
    log_half = n * math.log(2)
    pmf = [math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - log_half)
           for k in range(n + 1)]
    cdf = [0.0]
    for p in pmf:
        cdf.append(cdf[-1] + p)
    # Coverage of [x_(j), x_(n-1-j)] (0-based) is P(j < B <= n-1-j), B ~ Bin(n, 1/2); it
    # grows as j falls, so the first j from the middle with enough is the narrowest.
    for j in range(n // 2, -1, -1):
        if cdf[n - j] - cdf[j + 1] >= confidence:
            return (sorted_values[j], sorted_values[n - 1 - j])
    return None


BOOTSTRAP_ROUNDS = 2000


BOOTSTRAP_MOST = 2000  # beyond this many values the order-statistic interval stands in (below)


def bootstrap_median_ci(values: list[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the median; None for fewer than 3 values. Past
    BOOTSTRAP_MOST values it is the order-statistic interval (median_ci), which the
    bootstrap's converges to, in O(n) instead of 2000 resamples of n."""
    if len(values) < 3:
        return None
    if len(values) > BOOTSTRAP_MOST:
        return median_ci(sorted(values), confidence)
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(BOOTSTRAP_ROUNDS))
    tail = (1 - confidence) / 2
    return (quantile(medians, tail), quantile(medians, 1 - tail))


def ratio_ci(a: list[float], b: list[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap interval of median(b) / median(a), resampling each side on its own."""
    if len(a) < 3 or len(b) < 3:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(BOOTSTRAP_ROUNDS):
        denominator = statistics.median(rng.choices(a, k=len(a)))
        if denominator > 0:
            ratios.append(statistics.median(rng.choices(b, k=len(b))) / denominator)
    if not ratios:
        return None
    ratios.sort()
    tail = (1 - confidence) / 2
    return (quantile(ratios, tail), quantile(ratios, 1 - tail))


def _ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def permutation_p(a: list[float], b: list[float], rounds: int = 5000, seed: int = 0) -> float:
    """Two-sided permutation test p-value of the Wilcoxon rank-sum statistic.

    Ranks rather than medians: with few boots and tied values a difference of medians
    takes few distinct values, so even a clean separation would not reach significance;
    the rank sum does, and one wild boot cannot dominate it."""
    ranks = _ranks(a + b)
    expected = len(b) * (len(ranks) + 1) / 2
    observed = abs(sum(ranks[len(a):]) - expected)
    rng = random.Random(seed)
    extreme = 0
    for _ in range(rounds):
        rng.shuffle(ranks)
        if abs(sum(ranks[len(a):]) - expected) >= observed - 1e-9:
            extreme += 1
    return (extreme + 1) / (rounds + 1)


Strata = list[tuple[list[float], list[float]]]  # (a, b) per host: a comparison blocked by host


def _weights(strata: Strata) -> list[float]:
    """Each stratum's weight in a pooled ratio: n_a*n_b/(n_a+n_b), the inverse of the
    variance a difference of two means of that many boots would have."""
    raw = [len(a) * len(b) / (len(a) + len(b)) for a, b in strata]
    return [w / sum(raw) for w in raw]


def stratified_ratio(strata: Strata) -> float:
    """The pooled ratio of medians across strata: the weighted geometric mean of each
    stratum's median(b) / median(a), so a fast host and a slow one count alike."""
    logs = [math.log(statistics.median(b) / statistics.median(a)) for a, b in strata]
    return math.exp(math.fsum(w * x for w, x in zip(_weights(strata), logs, strict=True)))


def stratified_ratio_ci(strata: Strata, confidence: float = 0.95, seed: int = 0) -> tuple[float, float] | None:
    """Bootstrap interval of stratified_ratio, resampling each side within its stratum."""
    if any(len(a) < 3 or len(b) < 3 for a, b in strata):
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(BOOTSTRAP_ROUNDS):
        drawn = [(rng.choices(a, k=len(a)), rng.choices(b, k=len(b))) for a, b in strata]
        if all(statistics.median(a) > 0 for a, _ in drawn):
            ratios.append(stratified_ratio(drawn))
    if not ratios:
        return None
    ratios.sort()
    tail = (1 - confidence) / 2
    return (quantile(ratios, tail), quantile(ratios, 1 - tail))


def stratified_p(strata: Strata, rounds: int = 5000, seed: int = 0) -> float:
    """Two-sided permutation p of van Elteren's blocked rank-sum statistic: within each
    stratum (host) b's rank sum minus its expectation, weighted by 1/(N+1), summed.
    Labels are permuted only within a stratum, so a host that is faster overall cannot
    look like a difference between A and B."""
    ranked = [(_ranks(a + b), len(a), len(b)) for a, b in strata]

    def statistic(samples: list[tuple[list[float], int, int]]) -> float:
        return math.fsum((sum(r[na:]) - nb * (na + nb + 1) / 2) / (na + nb + 1) for r, na, nb in samples)

    observed = abs(statistic(ranked))
    rng = random.Random(seed)
    extreme = 0
    for _ in range(rounds):
        for ranks, _, _ in ranked:
            rng.shuffle(ranks)
        if abs(statistic(ranked)) >= observed - 1e-9:
            extreme += 1
    return (extreme + 1) / (rounds + 1)


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p a rank-sum permutation test can give with N_A and N_B
    values: both extreme splits out of C(n_a + n_b, n_a). With 3 boots a side it is
    0.1, so no verdict at 95% is possible whatever the boots show."""
    if n_a < 1 or n_b < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def boots_needed(alpha: float, most: int = 1000) -> int:
    """The fewest boots a side at which a permutation test can reach ALPHA."""
    return next((n for n in range(2, most + 1) if smallest_p(n, n) <= alpha), most)


def holm(p_values: list[float], alpha: float) -> list[float]:
    """Holm's step-down thresholds: the level each p-value is tested at, in input order.

    Sorted ascending, the k-th smallest p (0-based) is tested at alpha / (m - k), and
    testing stops at the first that fails: every later one is given the threshold 0.
    The family-wise error stays at most alpha under any dependence between the tests,
    and unlike plain Bonferroni a clear first difference leaves room for the next."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    thresholds = [0.0] * len(p_values)
    for k, i in enumerate(order):
        level = alpha / (len(p_values) - k)
        thresholds[i] = level
        if p_values[i] > level:
            break
    return thresholds


def outliers(values: list[float]) -> tuple[int, ...]:
    """Positions of values beyond 1.5 interquartile ranges from the quartiles."""
    if len(values) < 4:
        return ()
    ordered = sorted(values)
    q1, q3 = quantile(ordered, 0.25), quantile(ordered, 0.75)
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    return tuple(i for i, v in enumerate(values) if v < low or v > high)


def summarize(values: list[float], seed: int = 0) -> Summary | None:
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
        ci95_median=bootstrap_median_ci(ordered, seed=seed),
        ci95_median_order=median_ci(ordered),
        outliers=outliers(values),
    )

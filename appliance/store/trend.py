"""Where a phase stepped in a history: change points of the series of run-set medians,
found by Apache Otava (the change-point detector MongoDB's and DataStax's performance CI
grew into: e-divisive means over sliding windows, then a t-test merge step that keeps a
change only where it is significant), not by a threshold of our own.

Otava is made for exactly this input, one value per CI run in time order, and reports
each change with its p-value and the means before and after; it needs no tuning beyond
the significance level. A series of fewer than MIN_POINTS run sets has no change points
(there is too little on either side of any split to call one).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.errors import ApplianceError

MIN_POINTS = 6
MAX_PVALUE = 0.001  # Otava's default significance for a change point


@dataclass(frozen=True)
class Change:
    index: int  # the first run set after the step, in the series given
    before: float  # mean of the medians before the step (up to the previous change)
    after: float
    pvalue: float

    @property
    def relative(self) -> float:
        return self.after / self.before - 1 if self.before else float("nan")


def change_points(series: list[float], max_pvalue: float = MAX_PVALUE, min_magnitude: float = 0.0) -> list[Change]:
    """The steps of SERIES (medians in time order), as Otava finds them."""
    if len(series) < MIN_POINTS:
        return []
    try:
        from otava.analysis import compute_change_points  # numpy and scipy: only when asked
    except ImportError:
        raise ApplianceError("Apache Otava is not installed: run ./setup, or `pip install --no-deps apache-otava` "
                             "(its change-point code needs only numpy and scipy); --no-changes skips change points"
                             ) from None

    found, _ = compute_change_points(series, window_len=50, max_pvalue=max_pvalue, min_magnitude=min_magnitude)
    return [Change(int(cp.index), float(cp.stats.mean_1), float(cp.stats.mean_2), float(cp.stats.pvalue))
            for cp in found]

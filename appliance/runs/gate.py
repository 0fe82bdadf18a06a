"""The regression gate's decision: a candidate's boots against a baseline's, on one
phase. It fails only on both statistical evidence and a change that matters:

- FAIL: the compare machinery (permutation test and bootstrap interval, at the gate's
  level, split over its sequential looks) says the candidate is slower in the primary
  phase, and by more than the threshold (B/A above 1 + threshold);
- PASS: the interval of B/A lies below 1 + threshold: whatever the change, it is
  smaller than the threshold, at the gate's confidence;
- INCONCLUSIVE: neither yet; the decision says about how many boots a side would
  decide it (the interval narrows as 1/sqrt(n)).

A real slowdown below the threshold passes; so does a speed-up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance import results
from appliance.clocks import Unit
from appliance.results import RunRecord, RunSet
from appliance.runs import bench, compare

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
THRESHOLD = 0.05  # docs/HISTORY.md: A/A false alarms and power against 10% measured with it
# On the instruction clock: 17x the widest A/A range measured (0.03%, the Debian kernel's
# to_init with `instructions`), half the 1% effects kernel engineers chase (docs/MEASUREMENT.md)
COUNT_THRESHOLD = 0.005
THRESHOLDS = {Unit.MS: THRESHOLD, Unit.INSTRUCTIONS: COUNT_THRESHOLD}
MIN_BOOTS = 3
MAX_ESTIMATE = 10_000


@dataclass(frozen=True)
class Decision:
    verdict: str
    phase: str
    threshold: float
    confidence: float
    n_baseline: int
    n_candidate: int
    reason: str
    unit: str = Unit.MS.value  # what decided: ms (wall clock) or instructions (the instruction clock)
    median_baseline: float | None = None  # None: too few boots to compare
    median_candidate: float | None = None
    ratio: float | None = None  # candidate / baseline medians
    ci: tuple[float, float] | None = None  # of the ratio, at the gate's level
    p_value: float | None = None
    boots_needed: int | None = None  # per side, for an inconclusive gate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(baseline: list[results.RunRecord], candidate: list[results.RunRecord], phase: str = compare.PRIMARY, *,
           threshold: float | None = None, confidence: float = 0.95, looks: int = 1,
           unit: Unit = Unit.MS) -> Decision:
    """The gate's verdict on PHASE of CANDIDATE's runs against BASELINE's, in UNIT (the
    instruction clock's counts are compared by their ranges: compare.compare_counts);
    THRESHOLD defaults to the unit's (THRESHOLDS)."""
    threshold = THRESHOLDS[unit] if threshold is None else threshold
    result = compare.compare(baseline, candidate, confidence=confidence, primary=phase, looks=looks, unit=unit)
    row = next((r for r in result["rows"] if r["phase"] == phase), None)
    least = compare.MIN_COUNTED if unit is Unit.INSTRUCTIONS else MIN_BOOTS
    if row is None:
        n_a, n_b = len(results.counted(baseline)), len(results.counted(candidate))
        return Decision(INCONCLUSIVE, phase, threshold, confidence, n_a, n_b, unit=unit.value, boots_needed=least,
                        reason=f"{phase} needs at least {least} good boots a side with its {unit} (baseline {n_a}, "
                               f"candidate {n_b})")
    ratio, p = float(row["ratio"]), (None if row["p_value"] is None else float(row["p_value"]))
    ci = (float(row["ci"][0]), float(row["ci"][1]))
    limit = 1 + threshold

    def made(verdict: str, needed: int | None, reason: str) -> Decision:
        return Decision(verdict, phase, threshold, confidence, row["n_a"], row["n_b"], reason=reason, unit=unit.value,
                        median_baseline=row["median_a"], median_candidate=row["median_b"], ratio=ratio, ci=ci,
                        p_value=p, boots_needed=needed)

    if unit is Unit.INSTRUCTIONS:
        change = (f"{phase} {row['median_a'] / 1e6:.3f} -> {row['median_b'] / 1e6:.3f} M instructions "
                  f"({(ratio - 1) * 100:+.3f}%, range {(ci[0] - 1) * 100:+.3f}% to {(ci[1] - 1) * 100:+.3f}%)")
        evidence = "the instruction clock"
    else:
        change = f"{phase} {row['median_a']:.1f} -> {row['median_b']:.1f} ms ({(ratio - 1) * 100:+.1f}%, " \
                 f"{confidence * 100:g}% CI {(ci[0] - 1) * 100:+.1f}% to {(ci[1] - 1) * 100:+.1f}%)"
        evidence = f"p={p:.3g}"
    slower = row["verdict"] is not None and ratio > 1
    if slower and ratio > limit:
        return made(FAIL, None, f"regression: {change}, above the {threshold * 100:g}% threshold ({evidence})")
    if ci[1] <= limit:
        return made(PASS, None, f"no regression above {threshold * 100:g}%: {change}")
    return made(INCONCLUSIVE, boots_needed(row["n_a"], ci, ratio, limit),
                f"undecided: {change}; the interval still reaches above {threshold * 100:g}%")


def boots_needed(n: int, ci: tuple[float, ...], ratio: float, limit: float) -> int:
    """About how many boots a side would decide: the interval's half-width shrinks as
    1/sqrt(n) until it clears the threshold from the ratio."""
    half = (ci[1] - ci[0]) / 2
    gap = abs(limit - ratio)
    if gap <= 0 or half <= 0:
        return MAX_ESTIMATE
    return min(MAX_ESTIMATE, max(n + 1, math.ceil(n * (half / gap) ** 2)))


def bench_candidate(session: bench.Session, baseline: list[RunRecord], *, n: int, phase: str, threshold: float,
                    confidence: float, unit: Unit, out: Path, host: dict[str, Any]) -> tuple[RunSet, int]:
    """Boot the candidate SESSION (a bench.Session planned up to its --max-n): N boots,
    then on in steps of N while the gate against BASELINE is undecided, its level split
    over the looks as compare's sequential rule does. Its run set, written to OUT as it
    goes, and the number of looks planned."""
    max_n = session.plan.n
    looks = compare.looks_for(n, max_n)

    def decided(rounds: int) -> bool:
        return decide(baseline, session.runs, phase, threshold=threshold, confidence=confidence, looks=len(looks),
                      unit=unit).verdict != INCONCLUSIVE

    doc: RunSet = bench.run_then_write([session], session.plan.warmup, max_n, out,
                                       document=lambda complete, _: session.document(complete, host), looks=looks,
                                       stop=decided)
    return doc, len(looks)

"""A series of kernels booted as one appliance (`appliance range`): phases across the
series, and the steps where a phase changed.

Each kernel is one side; all are booted interleaved (a round boots each once), so the
host's drift does not pass for a kernel's effect. A step between neighbours is called out
only where the comparison (compare.compare, with the phase itself as the primary) calls
the difference real, with Holm's correction over the steps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance import results
from appliance.boot import hostfacts
from appliance.boot.accel import AccelChoice
from appliance.bundle import Bundle
from appliance.clocks import Unit, unit_of
from appliance.results import RunRecord, RunSet
from appliance.runs import bench, compare
from appliance.stats import holm, smallest_p

PHASES = ("kernel", "to_init", "total")


def medians(runs: list[RunRecord]) -> dict[str, float | None]:
    summary = results.summary(runs)["phases"]
    return {p: summary[p]["median"] if p in summary else None for p in PHASES}


def steps(series: list[tuple[str, list[RunRecord]]], phase: str = "kernel",
          confidence: float = 0.95, unit: Unit = Unit.MS) -> list[dict[str, Any]]:
    """Between each kernel and the next: the ratio of PHASE, its interval and p, and
    whether the step is real (Holm over the steps of the series); in instructions, real
    where the counts' range excludes 1 (compare.compare_counts)."""
    out: list[dict[str, Any]] = []
    for (name_a, runs_a), (name_b, runs_b) in zip(series, series[1:], strict=False):
        rows = {r["phase"]: r for r in compare.compare(runs_a, runs_b, confidence=confidence, primary=phase, unit=unit)["rows"]}
        row = rows.get(phase)
        out.append({"from": name_a, "to": name_b, "ratio": row["ratio"] if row else None,
                    "ci": row["ci"] if row else None, "p_value": row["p_value"] if row else 1.0, "unit": unit.value})
    if unit is Unit.INSTRUCTIONS:
        for step in out:
            ci = step["ci"]
            step["real"], step["reachable"] = bool(ci and (ci[0] > 1 or ci[1] < 1)), True
        return out
    thresholds = holm([s["p_value"] for s in out], 1 - confidence)
    for step, threshold, (pair_a, pair_b) in zip(out, thresholds, zip(series, series[1:], strict=False), strict=True):
        ci = step["ci"]
        step["real"] = bool(threshold and step["p_value"] <= threshold and ci and (ci[0] > 1 or ci[1] < 1))
        # Holm's first step tests at alpha / steps: below that, no step can be real whatever its size
        n_a, n_b = (len(results.counted(runs)) for _, runs in (pair_a, pair_b))
        step["reachable"] = smallest_p(n_a, n_b) <= (1 - confidence) / max(len(out), 1)
    return out


def table(series: list[tuple[str, list[RunRecord]]], found: list[dict[str, Any]], phase: str = "kernel") -> str:
    width = max(len(name) for name, _ in series)
    lines = [f"{'kernel':<{width}} " + " ".join(f"{p:>10}" for p in PHASES) + "  step"]
    for i, (name, runs) in enumerate(series):
        values = medians(runs)
        mark = ""
        if i and found[i - 1]["ratio"] is not None:
            step = found[i - 1]
            mark = f"{(step['ratio'] - 1) * 100:+.1f}% {phase}" + (
                " <- real step" if step["real"] else "" if step.get("reachable", True) else
                " (no verdict possible at this -n)")
        failed = len(results.failed(runs))
        lines.append(f"{name:<{width}} " + " ".join(f"{v:>10.1f}" if v is not None else f"{'-':>10}"
                                                    for v in values.values())
                     + f"  {mark}{f' ({failed} boots failed)' if failed else ''}")
    return "\n".join(lines)


def boot_series(target: Bundle, accel: AccelChoice, plan: bench.Plan, kernels: list[tuple[str, Path]], phase: str,
                out: Path) -> dict[str, Any]:
    """Boot TARGET with each of KERNELS ((name, image), in series order) interleaved, and
    write the series document to OUT (partial ones too) with the steps of PHASE."""
    host = hostfacts.collect(target.arch)
    sessions = [bench.Session(target.with_kernel(image), accel, replace(plan, keep_going=True)) for _, image in kernels]
    def document(complete: bool, _: int) -> dict[str, Any]:
        sides: list[RunSet] = [{"kernel": str(image), "name": name, **s.document(complete, host)}
                               for (name, image), s in zip(kernels, sessions, strict=True)]
        doc = results.series(sides, phase, complete=complete)
        doc["steps"] = steps([(name, s.runs) for (name, _), s in zip(kernels, sessions, strict=True)], phase,
                             unit=unit_of(plan.clock))
        return doc

    written: dict[str, Any] = bench.run_then_write(sessions, plan.warmup, plan.n, out, document=document)
    return written

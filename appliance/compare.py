"""A/B comparison of two run sets, and cross-checks of one bundle across channels.

Per phase: ratio of medians B/A with a bootstrap confidence interval and a permutation
test p-value. The intervals are Bonferroni-adjusted for the number of phases compared,
so "no difference anywhere" holds at the stated confidence for the whole table, not
phase by phase. A verdict is printed only where the interval excludes 1 and the exact
permutation test agrees at the same level: with few boots a percentile bootstrap is
optimistic, and the permutation test is not.
"""

from __future__ import annotations

import statistics
from typing import Any

from . import results
from .phases import EXEC, PHASE_NAMES, from_times
from .stats import permutation_p, ratio_ci, summarize


def _values(runs: list[dict[str, Any]], phase: str) -> list[float]:
    counted = results.counted(runs)
    return [v for r in counted if (v := r["phases_ms"].get(phase)) is not None]


def verdict(phase: str, ratio: float, ci: tuple[float, float]) -> str | None:
    """"B is 12% faster in kernel, CI 9-15%" when the interval excludes 1, else None."""
    if ci[1] < 1:
        return (f"B is {(1 - ratio) * 100:.1f}% faster in {phase}, "
                f"CI {(1 - ci[1]) * 100:.1f}-{(1 - ci[0]) * 100:.1f}%")
    if ci[0] > 1:
        return (f"B is {(ratio - 1) * 100:.1f}% slower in {phase}, "
                f"CI {(ci[0] - 1) * 100:.1f}-{(ci[1] - 1) * 100:.1f}%")
    return None


def compare(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]], confidence: float = 0.95,
            seed: int = 0) -> dict[str, Any]:
    phases = [p for p in PHASE_NAMES if len(_values(runs_a, p)) >= 3 and len(_values(runs_b, p)) >= 3]
    level = 1 - (1 - confidence) / max(len(phases), 1)
    rows = []
    for phase in phases:
        a, b = _values(runs_a, phase), _values(runs_b, phase)
        sa, sb = summarize(a), summarize(b)
        assert sa is not None and sb is not None
        ratio = sb.median / sa.median if sa.median else float("nan")
        ci = ratio_ci(a, b, level, seed)
        p_value = permutation_p(a, b, seed=seed)
        significant = ci is not None and p_value < 1 - level
        rows.append({"phase": phase, "median_a": sa.median, "median_b": sb.median, "n_a": len(a), "n_b": len(b),
                     "ratio": ratio, "ci": ci, "p_value": p_value,
                     "verdict": verdict(phase, ratio, ci) if significant and ci else None})
    return {"confidence": confidence, "per_phase_level": level, "rows": rows}


def comparison_table(comparison: dict[str, Any]) -> str:
    level = comparison["per_phase_level"] * 100
    header = f"{'phase':<9} {'median A':>10} {'median B':>10} {'B/A':>7} {f'CI ({level:.1f}%)':>17} {'p':>7}"
    lines = [header, "-" * len(header)]
    for row in comparison["rows"]:
        ci = f"{row['ci'][0]:.3f}-{row['ci'][1]:.3f}" if row["ci"] else "n/a"
        lines.append(f"{row['phase']:<9} {row['median_a']:>10.1f} {row['median_b']:>10.1f} {row['ratio']:>7.3f} "
                     f"{ci:>17} {row['p_value']:>7.4f}")
    verdicts = [row["verdict"] for row in comparison["rows"] if row["verdict"]]
    lines += verdicts or [f"no phase differs (every {level:.1f}% interval contains 1)"]
    return "\n".join(lines)


def crosscheck(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How far channels disagree: per probe (median time from exec) and per phase
    (between probe medians), each channel against the first."""
    channels = list(summaries)
    first = summaries[channels[0]]
    out: dict[str, Any] = {"reference": channels[0], "probes": {}, "phases": {}}
    for kind, key in (("probes", "probes"), ("phases", "phases_from_probe_medians")):
        for name in first[key]:
            ref = first[key][name]["median"] if kind == "probes" else first[key][name]
            row = {channels[0]: ref}
            for other in channels[1:]:
                entry = summaries[other][key].get(name)
                if entry is not None:
                    row[other] = entry["median"] if kind == "probes" else entry
                    row[f"{other}_minus_{channels[0]}"] = row[other] - ref
            out[kind][name] = row
    return out


def crosscheck_table(check: dict[str, Any]) -> str:
    ref = check["reference"]
    lines = []
    for kind in ("probes", "phases"):
        lines.append(f"{kind} (median ms{' from QEMU exec' if kind == 'probes' else ', between probe medians'}):")
        for name, row in check[kind].items():
            parts = [f"{ref} {row[ref]:.1f}"]
            parts += [f"{k} {v:.1f}" if "_minus_" not in k else f"diff {v:+.1f}"
                      for k, v in row.items() if k != ref]
            lines.append(f"  {name:<20} " + "  ".join(parts))
    return "\n".join(lines)


def paired_disagreement(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Exit minus trace, measured in the same boots (exit runs with paired trace).

    Per probe: the median over runs of (exit time - trace time) from exec, that is the
    exit channel's bias (QEMU's teardown after isa-debug-exit). Per phase: the median of
    the end probe's bias minus the start probe's, which is how much the two channels
    disagree on that phase's duration."""
    biases: list[dict[str, float]] = []
    for run in runs:
        if not run["ok"] or run["warmup"] or not run.get("paired_trace_ms"):
            continue
        exit_times = {e["name"]: e["t_ms"] for e in run["events"]}
        biases.append({name: exit_times[name] - traced for name, traced in run["paired_trace_ms"].items()
                       if name in exit_times})
    probes = sorted({name for bias in biases for name in bias})
    out: dict[str, Any] = {"runs": len(biases), "probes": {}, "phases": {}}
    for name in probes:
        out["probes"][name] = statistics.median(b[name] for b in biases if name in b)
    per_phase: dict[str, list[float]] = {}
    for bias in biases:
        # from_times on biases gives end-bias minus start-bias for every phase both ends have
        for phase, value in from_times({EXEC: 0.0, **bias}, allow_negative=True).items():
            if value is not None:
                per_phase.setdefault(phase, []).append(value)
    out["phases"] = {phase: statistics.median(values) for phase, values in per_phase.items()}
    return out


def paired_table(paired: dict[str, Any]) -> str:
    lines = [f"trace vs exit in the same boots ({paired['runs']} runs), exit minus trace, median ms:"]
    lines += [f"  probe {name:<20} {value:+.2f}" for name, value in paired["probes"].items()]
    lines += [f"  phase {name:<20} {value:+.2f}" for name, value in paired["phases"].items()]
    return "\n".join(lines)

"""A/B comparison of two run sets, and cross-checks of one bundle across channels.

Per phase: ratio of medians B/A with a bootstrap confidence interval and a permutation
test p-value (Wilcoxon rank sum). The phases are correlated (to_init contains kernel,
total contains everything), so testing each at the full level would find differences
that are not there, and plain Bonferroni over all of them can only call a verdict when
the two groups barely overlap. Instead:

- one *primary* phase, the one the user asks about (to_init unless told), is tested at
  the full level alpha;
- the other phases are tested only if the primary differs (a gatekeeper), with Holm's
  step-down correction at alpha; that keeps the family-wise error at most alpha;
- a sequential run (`looks` > 1: boot, look, boot more) spends alpha / looks at each
  planned look (Bonferroni over looks), so stopping as soon as the answer is decided
  cannot inflate the error, whatever the looks' dependence.

A verdict is printed only where the permutation test rejects at its level and the
bootstrap interval at the same level excludes 1: with few boots a percentile bootstrap
is optimistic, and the permutation test is not.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from appliance import results
from appliance.clocks import Unit
from appliance.phases import EXEC, PHASE_NAMES, from_times
from appliance.results import RunRecord
from appliance.stats import (
    Strata,
    boots_needed,
    holm,
    permutation_p,
    ratio_ci,
    smallest_p,
    stratified_p,
    stratified_ratio,
    stratified_ratio_ci,
    summarize,
)

PRIMARY = "to_init"
MARGIN = 0.02  # a sequential run also stops when the primary's interval lies within 1 +- MARGIN
# The instruction clock's noise floor: a count's interval is never narrower than this on
# either side of the observed range. Measured A/A ranges (docs/BENCHMARKS.md): 0.008-0.03%
# for the Debian kernel's to_init with `instructions`, 0 for `virtual`.
COUNT_FLOOR = 0.0005
MIN_COUNTED = 2  # boots a side a count comparison needs (a range needs two)


def _values(runs: list[RunRecord], phase: str, unit: Unit = Unit.MS) -> list[float]:
    return results.phase_values(results.counted(runs), phase, unit)


Pair = tuple[list[float], list[float]]  # one phase's values of A and B (on one host)


def host_of(run: RunRecord) -> str:
    """The host a run booted on: its worker's host label on a fleet, "" on this host."""
    worker = run.get("worker")
    return str(worker.get("host_name", "")) if isinstance(worker, dict) else ""


def strata(runs_a: list[RunRecord], runs_b: list[RunRecord], phase: str) -> dict[str, Pair]:
    """PHASE's values of A and B per host, for hosts that booted both (a fleet's blocks
    hold every arm, so that is every host with a finished block)."""
    hosts = sorted({host_of(r) for r in runs_a} & {host_of(r) for r in runs_b})
    return {h: (_values([r for r in runs_a if host_of(r) == h], phase),
                _values([r for r in runs_b if host_of(r) == h], phase)) for h in hosts}


def verdict(phase: str, ratio: float, ci: tuple[float, float]) -> str | None:
    """"B is 12% faster in kernel, CI 9-15%" when the interval excludes 1, else None."""
    if ci[1] < 1:
        return (f"B is {(1 - ratio) * 100:.1f}% faster in {phase}, "
                f"CI {(1 - ci[1]) * 100:.1f}-{(1 - ci[0]) * 100:.1f}%")
    if ci[0] > 1:
        return (f"B is {(ratio - 1) * 100:.1f}% slower in {phase}, "
                f"CI {(ci[0] - 1) * 100:.1f}-{(ci[1] - 1) * 100:.1f}%")
    return None


@dataclass(frozen=True)
class Sample:
    """One phase's values of A and B, pooled and per host (blocked by host when the
    runs came from several: the ratio, interval and test are then the stratified ones)."""

    a: list[float]
    b: list[float]
    by_host: Strata

    @property
    def blocked(self) -> bool:
        return len(self.by_host) > 1

    def ratio(self) -> float:
        if self.blocked:
            return stratified_ratio(self.by_host)
        ma, mb = statistics.median(self.a), statistics.median(self.b)
        return mb / ma if ma else float("nan")

    def p(self, seed: int) -> float:
        return stratified_p(self.by_host, seed=seed) if self.blocked else permutation_p(self.a, self.b, seed=seed)

    def ci(self, confidence: float, seed: int) -> tuple[float, float] | None:
        if self.blocked:
            return stratified_ratio_ci(self.by_host, confidence, seed)
        return ratio_ci(self.a, self.b, confidence, seed)


def sample(runs_a: list[RunRecord], runs_b: list[RunRecord], phase: str) -> Sample:
    hosts = [pair for pair in strata(runs_a, runs_b, phase).values() if len(pair[0]) >= 3 and len(pair[1]) >= 3]
    return Sample(_values(runs_a, phase), _values(runs_b, phase), hosts)


def _row(phase: str, values: Sample, role: str, seed: int) -> dict[str, Any]:
    sa, sb = summarize(values.a), summarize(values.b)
    assert sa is not None and sb is not None
    return {"phase": phase, "role": role, "median_a": sa.median, "median_b": sb.median, "n_a": len(values.a),
            "n_b": len(values.b), "ratio": values.ratio(), "blocked_by_host": values.blocked,
            "p_value": values.p(seed), "level": None, "ci": None, "verdict": None}


def _decide(row: dict[str, Any], values: Sample, alpha: float, seed: int) -> None:
    """Test ROW at ALPHA (0: not tested): its interval at that level, and a verdict
    where the permutation test and the interval agree that the phase differs."""
    row["level"] = 1 - alpha if alpha else None
    row["ci"] = values.ci(1 - alpha, seed) if alpha else None
    if alpha and row["ci"] and row["p_value"] <= alpha:
        row["verdict"] = verdict(row["phase"], row["ratio"], row["ci"])


def count_interval(a: list[float], b: list[float], floor: float = COUNT_FLOOR) -> tuple[float, float]:
    """The interval of B/A for a near-deterministic count: every ratio of an observed B
    to an observed A (smallest B over largest A, largest over smallest), widened by the
    noise FLOOR. No distribution is assumed; with counts that repeat to 0.03% (or
    exactly) it is as narrow as the guest's work allows, not the host's noise."""
    return min(b) / max(a) * (1 - floor), max(b) / min(a) * (1 + floor)


def compare_counts(runs_a: list[RunRecord], runs_b: list[RunRecord], primary: str = PRIMARY,
                   floor: float = COUNT_FLOOR) -> dict[str, Any]:
    """Compare the instruction clock's phases of two run sets: per phase the ratio of
    medians and the range interval (count_interval); a phase differs where the interval
    excludes 1. No test of ranks: a metric that repeats to 0.03% needs none, and a rank
    test cannot decide on 3 boots a side however clear the difference."""
    rows = []
    for phase in PHASE_NAMES:
        a, b = _values(runs_a, phase, Unit.INSTRUCTIONS), _values(runs_b, phase, Unit.INSTRUCTIONS)
        if len(a) < MIN_COUNTED or len(b) < MIN_COUNTED or min(a) <= 0:
            continue
        ratio = statistics.median(b) / statistics.median(a)
        ci = count_interval(a, b, floor)
        rows.append({"phase": phase, "role": "primary" if phase == primary else "secondary",
                     "median_a": statistics.median(a), "median_b": statistics.median(b), "n_a": len(a), "n_b": len(b),
                     "ratio": ratio, "blocked_by_host": False, "p_value": None, "level": None, "ci": ci,
                     "verdict": verdict(phase, ratio, ci)})
    has_primary = any(r["phase"] == primary for r in rows)
    return {"unit": Unit.INSTRUCTIONS.value, "confidence": None, "alpha": None, "looks": 1,
            "primary": primary if has_primary else None, "floor": floor,
            "method": f"instruction counts: range of B/A widened by a {floor * 100:g}% floor; a phase differs where it "
                      "excludes 1", "rows": rows, "order_effect": None}


def compare(runs_a: list[RunRecord], runs_b: list[RunRecord], *, confidence: float = 0.95,
            primary: str = PRIMARY, looks: int = 1, seed: int = 0, unit: Unit = Unit.MS) -> dict[str, Any]:
    """Compare the phases of two run sets (see the module docstring for the procedure);
    in instructions, by their counts' ranges (compare_counts)."""
    if unit is Unit.INSTRUCTIONS:
        return compare_counts(runs_a, runs_b, primary)
    alpha = (1 - confidence) / max(looks, 1)
    values = {p: sample(runs_a, runs_b, p) for p in PHASE_NAMES}
    phases = [p for p, v in values.items() if len(v.a) >= 3 and len(v.b) >= 3]
    has_primary = primary in phases
    rows = {p: _row(p, values[p], "primary" if p == primary else "secondary", seed) for p in phases}
    gate_open = True
    if has_primary:
        _decide(rows[primary], values[primary], alpha, seed)
        gate_open = rows[primary]["verdict"] is not None
    secondary = [p for p in phases if p != primary]
    thresholds = holm([rows[p]["p_value"] for p in secondary], alpha) if gate_open else [0.0] * len(secondary)
    for phase, threshold in zip(secondary, thresholds, strict=True):
        _decide(rows[phase], values[phase], threshold, seed)
        # an untested phase still gets an interval, at the first Holm step's level, to read
        if rows[phase]["ci"] is None:
            rows[phase]["ci"] = values[phase].ci(1 - alpha / max(len(secondary), 1), seed)
    method = "primary at alpha; others gated by it, Holm step-down; alpha split over looks"
    hosts = per_host(runs_a, runs_b, primary if has_primary else "total", confidence, seed)
    if len(hosts) > 1:
        method += "; blocked by host (van Elteren, stratified bootstrap)"
    out: dict[str, Any] = {
        "confidence": confidence, "alpha": alpha, "looks": looks, "primary": primary if has_primary else None,
        "method": method, "rows": [rows[p] for p in phases],
        "order_effect": order_effect([runs_a, runs_b], primary if has_primary else "total", seed)}
    if len(hosts) > 1:
        out["hosts"] = hosts
        out["hosts_disagree"] = disagree(hosts)
    if has_primary:
        out["reach"] = reach(rows[primary]["n_a"], rows[primary]["n_b"], alpha)
    return out


def reach(n_a: int, n_b: int, alpha: float) -> dict[str, Any]:
    """Whether N_A and N_B boots can give a verdict at ALPHA at all, and how many can."""
    lowest = smallest_p(n_a, n_b)
    return {"possible": lowest <= alpha, "smallest_p": lowest, "boots_needed": boots_needed(alpha), "n_a": n_a,
            "n_b": n_b}


def reach_note(n: int, alpha: float, what: str = "") -> str | None:
    """One line, before any boot, when N boots a side cannot reach a verdict at ALPHA."""
    lowest = smallest_p(n, n)
    if lowest <= alpha:
        return None
    return (f"note: with {n} boots a side no verdict is possible{what} (the smallest p is {lowest:.3g}, the level "
            f"needs {alpha:.3g}): intervals are printed but cannot decide; -n {boots_needed(alpha)} can")


def per_host(runs_a: list[RunRecord], runs_b: list[RunRecord], phase: str, confidence: float,
             seed: int = 0) -> list[dict[str, Any]]:
    """PHASE compared on each host alone (at CONFIDENCE, each host on its own: these
    say where a pooled verdict comes from, they are not extra verdicts)."""
    rows = []
    for host, (a, b) in strata(runs_a, runs_b, phase).items():
        if len(a) < 3 or len(b) < 3:
            rows.append({"host": host, "n_a": len(a), "n_b": len(b), "ratio": None, "ci": None, "p_value": None,
                         "verdict": None})
            continue
        ratio = statistics.median(b) / statistics.median(a)
        ci, p = ratio_ci(a, b, confidence, seed), permutation_p(a, b, seed=seed)
        said = verdict(phase, ratio, ci) if ci and p <= 1 - confidence else None
        rows.append({"host": host, "n_a": len(a), "n_b": len(b), "ratio": ratio, "ci": ci, "p_value": p,
                     "verdict": said})
    return rows


def disagree(hosts: list[dict[str, Any]]) -> bool:
    """Whether one host calls B faster and another slower (each by its own verdict)."""
    faster = any(h["verdict"] and h["ci"][1] < 1 for h in hosts)
    slower = any(h["verdict"] and h["ci"][0] > 1 for h in hosts)
    return faster and slower


ORDER_ALPHA = 0.01  # an order effect is reported below this p (it is a warning, not a verdict)


def order_effect(run_sets: list[list[RunRecord]], phase: str = PRIMARY, seed: int = 0) -> dict[str, Any] | None:
    """Do boots that ran first in their round differ from the rest? Each arm's values are
    divided by that arm's median (so arms of different speed pool), then the first-slot
    values are tested against the others by permutation. None without slots recorded or
    with fewer than 3 boots on either side."""
    first: list[float] = []
    rest: list[float] = []
    for runs in run_sets:
        placed = [(r["slot"], v) for r in results.counted(runs)
                  if "slot" in r and (v := results.phases_of(r).get(phase)) is not None]
        if not placed:
            continue
        middle = statistics.median(v for _, v in placed)
        if middle <= 0:
            continue
        for slot, value in placed:
            (first if slot == 0 else rest).append(value / middle)
    if len(first) < 3 or len(rest) < 3:
        return None
    ratio = statistics.median(first) / statistics.median(rest)
    p = permutation_p(rest, first, seed=seed)
    return {"phase": phase, "first_over_rest": ratio, "p_value": p, "n_first": len(first), "n_rest": len(rest),
            "flagged": p <= ORDER_ALPHA}


def order_line(effect: dict[str, Any] | None) -> str | None:
    """One warning line when the first boot of a round differs from the others."""
    if effect is None or not effect["flagged"]:
        return None
    change = (effect["first_over_rest"] - 1) * 100
    return (f"order effect: boots that ran first in their round were {abs(change):.1f}% "
            f"{'slower' if change > 0 else 'faster'} in {effect['phase']} (p={effect['p_value']:.4f}); "
            "the randomized order spreads this over every arm, but the host is not steady")


def decided(comparison: dict[str, Any], margin: float = MARGIN) -> str | None:
    """Why a sequential comparison may stop now, or None to boot on: the primary phase
    differs, or its interval lies within 1 +- MARGIN (no difference worth booting for)."""
    rows = [r for r in comparison["rows"] if r["role"] == "primary"]
    if not rows:
        return None
    row = rows[0]
    if row["verdict"] is not None:
        return f"{row['phase']} differs"
    ci = row["ci"]
    if ci is not None and 1 - margin <= ci[0] and ci[1] <= 1 + margin:
        return f"{row['phase']} is within {margin * 100:g}% (interval {ci[0]:.3f}-{ci[1]:.3f})"
    return None


def looks_for(n: int, max_n: int) -> list[int]:
    """The planned looks of a sequential run: every N counted boots up to MAX_N."""
    if max_n <= n:
        return [n]
    return sorted({*range(n, max_n + 1, n), max_n})


def comparison_table(comparison: dict[str, Any]) -> str:
    if comparison.get("unit") == Unit.INSTRUCTIONS.value:
        return count_table(comparison)
    header = f"{'phase':<9} {'median A':>10} {'median B':>10} {'B/A':>7} {'CI':>13} {'level':>7} {'p':>7}"
    lines = [header, "-" * len(header)]
    for row in comparison["rows"]:
        ci = f"{row['ci'][0]:.3f}-{row['ci'][1]:.3f}" if row["ci"] else "n/a"
        level = f"{row['level'] * 100:.2f}%" if row["level"] else "-"
        mark = " *" if row["role"] == "primary" else ""
        lines.append(f"{row['phase']:<9} {row['median_a']:>10.1f} {row['median_b']:>10.1f} {row['ratio']:>7.3f} "
                     f"{ci:>13} {level:>7} {row['p_value']:>7.4f}{mark}")
    primary = comparison.get("primary")
    alpha = comparison["alpha"]
    if primary:
        lines.append(f"* primary phase, tested at {(1 - alpha) * 100:.2f}%; the others only if it differs "
                     "(Holm step-down; '-' = not tested)")
    verdicts = [row["verdict"] for row in comparison["rows"] if row["verdict"]]
    lines += verdicts or [f"no phase differs at {(1 - alpha) * 100:.2f}% confidence"]
    possible = comparison.get("reach")
    if possible and not possible["possible"]:
        lines.append(f"no verdict was possible: with {possible['n_a']} boots a side the smallest p is "
                     f"{possible['smallest_p']:.3g}, above {alpha:.3g}; a verdict needs -n "
                     f"{possible['boots_needed']} or more")
    lines += host_lines(comparison)
    warning = order_line(comparison.get("order_effect"))
    return "\n".join(lines + ([warning] if warning else []))


def count_table(comparison: dict[str, Any]) -> str:
    """A comparison in instructions (millions), with its range intervals."""
    header = f"{'phase':<9} {'A (M insns)':>14} {'B (M insns)':>14} {'B/A':>8} {'interval':>17}"
    lines = [header, "-" * len(header)]
    for row in comparison["rows"]:
        ci = f"{row['ci'][0]:.5f}-{row['ci'][1]:.5f}"
        mark = " *" if row["role"] == "primary" else ""
        lines.append(f"{row['phase']:<9} {row['median_a'] / 1e6:>14.3f} {row['median_b'] / 1e6:>14.3f} "
                     f"{row['ratio']:>8.5f} {ci:>17}{mark}")
    lines.append(f"decided on the instruction clock: {comparison['method']}")
    verdicts = [row["verdict"] for row in comparison["rows"] if row["verdict"]]
    return "\n".join(lines + (verdicts or ["no phase differs in instructions"]))


def host_lines(comparison: dict[str, Any]) -> list[str]:
    """Per host, the primary phase's ratio; and a loud line when hosts disagree."""
    hosts = comparison.get("hosts")
    if not hosts:
        return []
    phase = comparison.get("primary") or "total"
    lines = [f"per host ({phase}; the pooled rows above are blocked by host):"]
    for h in hosts:
        if h["ratio"] is None:
            lines.append(f"  {h['host']:<20} {h['n_a']}+{h['n_b']} boots: too few to compare")
            continue
        ci = f"{h['ci'][0]:.3f}-{h['ci'][1]:.3f}" if h["ci"] else "n/a"
        lines.append(f"  {h['host']:<20} B/A {h['ratio']:.3f}  CI {ci}  p {h['p_value']:.4f}  "
                     f"{h['verdict'] or 'no difference on this host'}")
    if comparison.get("hosts_disagree"):
        lines.append("WARNING: the hosts disagree: one finds B faster, another slower; the pooled verdict "
                     "hides a host-dependent effect: compare the host types on their own")
    return lines


# Channels whose phases are not durations within one boot: the exit channel times each
# probe in a boot of its own (that probe ends it), so a phase between two of its probe
# medians mixes boots, and the boot-to-boot spread can exceed the phase (its median
# payload_start has come before its init_start). Its probes are compared; its phases only
# in the paired section, where trace and exit time the same boots.
NO_PHASES = {"exit": "the exit channel times each probe in a boot of its own: phases between its probe medians "
                     "mix boots, so they are compared only in the paired section (same boots)"}


def crosscheck(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How far channels disagree: per probe (median time from exec) and per phase
    (between probe medians), each channel against the first; a channel that cannot
    time phases within one boot (NO_PHASES) is left out of the phases, with the reason."""
    channels = list(summaries)
    first = summaries[channels[0]]
    out: dict[str, Any] = {"reference": channels[0], "probes": {}, "phases": {},
                           "notes": [f"{c}: {NO_PHASES[c]}" for c in channels if c in NO_PHASES]}
    for kind, key in (("probes", "probes"), ("phases", "phases_from_probe_medians")):
        if kind == "phases" and channels[0] in NO_PHASES:
            continue
        for name in first[key]:
            ref = first[key][name]["median"] if kind == "probes" else first[key][name]
            row = {channels[0]: ref}
            for other in channels[1:]:
                if kind == "phases" and other in NO_PHASES:
                    continue
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
        if not check[kind]:
            continue
        lines.append(f"{kind} (median ms{' from QEMU exec' if kind == 'probes' else ', between probe medians'}):")
        for name, row in check[kind].items():
            parts = [f"{ref} {row[ref]:.1f}"]
            parts += [f"{k} {v:.1f}" if "_minus_" not in k else f"diff {v:+.1f}"
                      for k, v in row.items() if k != ref]
            lines.append(f"  {name:<20} " + "  ".join(parts))
    lines += [f"note: {note}" for note in check.get("notes", [])]
    return "\n".join(lines)


def paired_disagreement(runs: list[RunRecord]) -> dict[str, Any]:
    """Exit minus trace, measured in the same boots (exit runs with paired trace).

    Per probe: the median over runs of (exit time - trace time) from exec, that is the
    exit channel's bias (QEMU's teardown after isa-debug-exit). Per phase: the median of
    the end probe's bias minus the start probe's, which is how much the two channels
    disagree on that phase's duration."""
    biases: list[dict[str, float]] = []
    for run in runs:
        if not results.is_counted(run) or not run.get("paired_trace_ms"):
            continue
        exit_times = results.probe_times(run)
        biases.append({name: exit_times[name] - traced for name, traced in (run.get("paired_trace_ms") or {}).items()
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

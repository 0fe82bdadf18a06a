"""Results JSON: raw per-run events and phases, plus summary statistics.

This module owns the format (docs/CONTRACTS.md, "Results"): every document is built by
the constructor of its kind (`run_set` for bench, `comparison`, `crosscheck`, `tune`,
`series`, `analysis`), says that kind, and is read back by it, never by guessing from
its keys. Raw events are kept so any statistic can be recomputed later (`appliance
stats`). A run set that was interrupted is written with "complete": false, never
passed off as complete.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from appliance import systemdview
from appliance.clocks import Unit
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.phases import EXEC, PHASE_NAMES, from_times, of_run, payload_probe
from appliance.stats import summarize
from appliance.systemdview import View

FORMAT = 2  # 2: every document says its kind; 1 (kind told by its keys) is read and migrated


# The run set's parts as types (docs/CONTRACTS.md, "Results"): strict mypy checks every
# reader's keys. A phase is a duration in one clock's unit (clocks.Unit): `phases_ms` in
# milliseconds on every run, `phases_insn` in guest instructions under a counting clock.
MsPhases = dict[str, float | None]
InsnPhases = dict[str, int | None]


class Event(TypedDict):
    """A probe as the host saw it: its name, ms after QEMU's exec, and who reported it."""

    name: str
    t_ms: float
    source: NotRequired[str]


class GuestProbe(TypedDict):
    name: str
    boottime_ns: int


class GuestModule(TypedDict):
    name: str
    start_ns: int
    duration_ns: int


class RunRecord(TypedDict):
    """One boot. Every run has index, warmup and ok; a failed one its error and console
    tail; a successful one its events and phases; the rest where they were measured."""

    index: int
    warmup: bool
    ok: bool
    round: NotRequired[int]
    slot: NotRequired[int]
    worker: NotRequired[dict[str, Any]]  # on a fleet: the worker that booted it
    block: NotRequired[int]
    error: NotRequired[str | None]
    console_tail: NotRequired[str]
    start_ns: NotRequired[int]
    events: NotRequired[list[Event]]
    phases_ms: NotRequired[MsPhases]
    guest_probes: NotRequired[list[GuestProbe]]
    qemu_max_rss_kib: NotRequired[int | None]
    qemu_lifetime_ms: NotRequired[float | None]
    runner_overhead_ms: NotRequired[float | None]
    uart_us_per_char: NotRequired[float | None]
    paired_trace_ms: NotRequired[dict[str, float] | None]
    guest_modules: NotRequired[list[GuestModule]]
    payload_status: NotRequired[int | None]
    warnings: NotRequired[list[str]]
    host_load: NotRequired[dict[str, Any] | None]
    instructions: NotRequired[dict[str, int]]  # each event's guest instruction count
    phases_insn: NotRequired[InsnPhases]
    vcpu_instructions: NotRequired[list[int]]
    restored: NotRequired[bool]
    forwards: NotRequired[list[str]]  # where the host reached a service, this boot
    profiled_raw: NotRequired[str]
    profiled: NotRequired[dict[str, Any]]
    systemd: NotRequired[View]  # an image's own init: systemd's view of the boot (systemdview.py)


class RunSet(TypedDict):
    """A bench document, and each side of the other kinds (see run_set)."""

    format: int
    kind: str
    complete: bool
    host: dict[str, Any]
    accel: dict[str, str]
    bundle: dict[str, Any]
    settings: dict[str, Any]
    runs: list[RunRecord]
    failed_runs: int
    failures: dict[str, int]
    summary: dict[str, Any]
    disturbed_runs: int
    fleet: NotRequired[dict[str, Any]]
    kernel: NotRequired[str]  # a series' side: its kernel and name
    name: NotRequired[str]
    analysis: NotRequired[dict[str, Any]]  # an analysis document: what analyze found
    cost: NotRequired[dict[str, Any]]  # a cost document: what each source costs


def phases_of(run: RunRecord, unit: Unit = Unit.MS) -> dict[str, float | None]:
    """RUN's phases in UNIT ({} where that clock did not run)."""
    if unit is Unit.INSTRUCTIONS:
        return {k: (None if v is None else float(v)) for k, v in (run.get("phases_insn") or {}).items()}
    return dict(run.get("phases_ms") or {})


def _stats(counted: list[RunRecord], values: list[float | None]) -> dict[str, Any] | None:
    """Statistics of one figure across runs, with outliers named by run index."""
    present = [(run["index"], v) for run, v in zip(counted, values, strict=True) if v is not None]
    result = summarize([v for _, v in present])
    if result is None:
        return None
    out = result.to_dict()
    out["outliers"] = [present[i][0] for i in result.outliers]
    return out


def phase_values(runs: list[RunRecord], phase: str, unit: Unit = Unit.MS) -> list[float]:
    """PHASE's durations in UNIT over RUNS, where each run has one (the caller chooses
    the runs: all, or the counted ones)."""
    return [v for r in runs if (v := phases_of(r, unit).get(phase)) is not None]


def probe_times(run: RunRecord) -> dict[str, float]:
    """Each probe's time from QEMU's exec, in ms (first occurrence)."""
    times: dict[str, float] = {}
    for event in run.get("events", []):
        times.setdefault(event["name"], event["t_ms"])
    return times


def recomputed(side: RunSet) -> tuple[list[RunRecord], int]:
    """SIDE's runs with every phase derived again from the run's raw events (as the
    runner derived them: phases.of_run), and how many runs' stored phases differed."""
    anchored = (side.get("settings") or {}).get("channel") == "exit"
    runs: list[RunRecord] = []
    differed = 0
    for run in side["runs"]:
        if not run["ok"]:
            runs.append(run)
            continue
        phases = of_run({EXEC: 0.0, **probe_times(run)}, anchored)
        stored = phases_of(run)
        if any(_differs(stored.get(name), phases.get(name)) for name in PHASE_NAMES):
            differed += 1
        runs.append({**run, "phases_ms": phases})
    return runs, differed


def _differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(a - b) > 1e-6


def is_counted(run: RunRecord) -> bool:
    """Whether statistics count RUN: it succeeded and was not a warm-up (the one rule)."""
    return bool(run["ok"]) and not run["warmup"]


def counted(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs statistics are made of: successful, and not warm-ups."""
    return [r for r in runs if is_counted(r)]


def summary(runs: list[RunRecord]) -> dict[str, Any]:
    """Statistics over the counted (non-warm-up, successful) runs.

    `phases` are per-run phase durations; `probes` are per-probe times from exec; and
    `phases_from_probe_medians` are phases between those medians, the only phase figures
    the exit channel can give (its probes come from different boots)."""
    runs = counted(runs)
    out: dict[str, Any] = {"phases": {}, "probes": {}}
    for phase in PHASE_NAMES:
        stats = _stats(runs, [phases_of(r).get(phase) for r in runs])
        if stats is not None:
            out["phases"][phase] = stats
    instructions = {phase: stats for phase in PHASE_NAMES
                    if (stats := _stats(runs, [phases_of(r, Unit.INSTRUCTIONS).get(phase) for r in runs])) is not None}
    if instructions:  # the instruction clock's phases (--clock instructions|virtual), in instructions
        out["phases_insn"] = instructions
    names = [n for r in runs for n in probe_times(r) if n != EXEC]
    for name in dict.fromkeys(names):
        stats = _stats(runs, [probe_times(r).get(name) for r in runs])
        if stats is not None:
            out["probes"][name] = stats
    medians = {name: s["median"] for name, s in out["probes"].items()}
    out["phases_from_probe_medians"] = {k: v for k, v in from_times({EXEC: 0.0, **medians}).items() if v is not None}
    figures: dict[str, list[float | None]] = {"qemu_max_rss_kib": [r.get("qemu_max_rss_kib") for r in runs],
               "runner_overhead_ms": [r.get("runner_overhead_ms") for r in runs],
               "uart_us_per_char": [r.get("uart_us_per_char") for r in runs]}
    for figure, values in figures.items():
        stats = _stats(runs, values)
        if stats is not None:
            out[figure] = stats
    memory = guest_memory(runs)
    if memory:
        out["guest_memory_kib"] = memory
    views = [(r["systemd"], phases_of(r), guest_ms(r)) for r in runs if "systemd" in r]
    if views:  # an image's own init: systemd's view beside the host's
        out["systemd"] = systemdview.summary(views)
    return out


def guest_ms(run: RunRecord) -> dict[str, float]:
    """Each probe's time on the guest's clock (CLOCK_BOOTTIME, ms), the first of each name,
    from its console line."""
    return {p["name"]: p["boottime_ns"] / 1e6 for p in reversed(run.get("guest_probes", []))}


def payload_probes(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The probes a payload fired itself ([probes], the `probe` program), with their
    statistics in SUMMARY: every probe that is neither built in nor a host event."""
    return {name: s for name, s in summary.get("probes", {}).items() if payload_probe(name)}


def guest_memory(runs: list[RunRecord]) -> dict[str, dict[str, float]]:
    """Per stage, the median of each /proc/meminfo figure profiled reported (KiB)."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for stage, figures in (run.get("profiled") or {}).get("memory", {}).items():
            for key, value in figures.items():
                values.setdefault(stage, {}).setdefault(key, []).append(float(value))
    return {stage: {k: statistics.median(v) for k, v in figures.items()} for stage, figures in values.items()}


def disturbed(runs: list[RunRecord]) -> int:
    """How many counted boots ran on a busy host (their `host_load` says so)."""
    return sum(1 for r in counted(runs) if (r.get("host_load") or {}).get("disturbed"))


def failed(runs: list[RunRecord]) -> list[RunRecord]:
    """The boots that failed (warm-ups too: a broken boot is broken however it counts)."""
    return [r for r in runs if not r["ok"]]


def failure_reasons(runs: list[RunRecord]) -> dict[str, int]:
    """How many boots failed, by the first line of their error."""
    return dict(Counter(str(r.get("error")).splitlines()[0] for r in failed(runs)))


KINDS = ("bench", "compare", "crosscheck", "tune", "series", "analysis", "bisect", "cost")


def run_set(*, host: dict[str, Any], accel: dict[str, str], bundle: dict[str, Any], settings: dict[str, Any],
            runs: list[RunRecord], complete: bool, fleet: dict[str, Any] | None = None) -> RunSet:
    """A bench document: one bundle's boots through one channel (also each side of the
    other kinds: A and B, every knob, every kernel, every channel). FLEET: the cluster
    and its workers' hosts, when the boots ran on one (each run names its worker)."""
    doc: RunSet = {
        "format": FORMAT,
        "kind": "bench",
        "complete": complete,
        "host": host,
        "accel": accel,
        "bundle": bundle,
        "settings": settings,
        "runs": runs,
        "failed_runs": len(failed(runs)),
        "failures": failure_reasons(runs),
        "summary": summary(runs),
        "disturbed_runs": disturbed(runs),
    }
    if fleet:
        doc["fleet"] = fleet
    return doc


# How interleaved arms are ordered: every round in a random order, balanced so each arm
# boots first equally often (each run records its round and slot).
ORDER = "random-balanced"


def comparison(a: RunSet, b: RunSet, result: dict[str, Any], *, complete: bool,
               append_b: str = "") -> dict[str, Any]:
    """A compare document: two run sets booted interleaved, and their comparison."""
    return {"format": FORMAT, "kind": "compare", "complete": complete, "order": ORDER, "append_b": append_b,
            "a": a, "b": b, "comparison": result}


def crosscheck(channels: dict[str, RunSet], check: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    """A crosscheck document: one bundle's run set per channel, and how far they disagree."""
    return {"format": FORMAT, "kind": "crosscheck", "complete": complete, "channels": channels, "crosscheck": check}


def tune(base: RunSet, variants: dict[str, RunSet], extra: dict[str, Any], *,
         complete: bool) -> dict[str, Any]:
    """A tune document: the base's run set, one per knob, and the ranking (EXTRA)."""
    return {"format": FORMAT, "kind": "tune", "complete": complete, "base": base, "variants": variants, "tune": extra}


def series(sides: list[RunSet], phase: str, *, complete: bool) -> dict[str, Any]:
    """A series document (range): one run set per kernel, each with its kernel and name."""
    return {"format": FORMAT, "kind": "series", "complete": complete, "phase": phase, "series": sides}


def analysis(runs: RunSet, found: dict[str, Any]) -> RunSet:
    """An analysis document: the plain boots' run set and what analyze found inside them."""
    return {**runs, "kind": "analysis", "analysis": found}


def cost(runs: RunSet, table: dict[str, Any]) -> RunSet:
    """A cost document (inspect --cost): the bundle's plain boots' run set and what each
    of its sources costs (analysis/cost.py)."""
    return {**runs, "kind": "cost", "cost": table}


def bisect_step(sides: dict[str, RunSet], step: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    """A bisect step's document: the good end, the midpoint and the bad end booted
    interleaved (a run set each, named by their commits), and how the step classified
    the midpoint."""
    return {"format": FORMAT, "kind": "bisect", "complete": complete, "sides": sides, "step": step}


def kind(doc: Mapping[str, Any]) -> str:
    return str(doc["kind"])


def write(path: Path, doc: Mapping[str, Any]) -> None:
    if doc.get("format") != FORMAT or doc.get("kind") not in KINDS:
        raise ValueError(f"not a results document of this format: {doc.get('format')!r} {doc.get('kind')!r}")
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode())


def _migrate_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """A format-1 document (no `kind`: it was told by its keys) as format 2."""
    if "comparison" in doc:
        found = "compare"
    elif "series" in doc:
        found = "series"
    elif "tune" in doc:
        found = "tune"
    elif isinstance(doc.get("channels"), dict):
        found = "crosscheck"
    elif "analysis" in doc:
        found = "analysis"
    else:
        found = "bench"
    nested = {"compare": ("a", "b"), "tune": ("base",)}.get(found, ())
    out = {**doc, "format": FORMAT, "kind": found}
    for key in nested:
        if isinstance(doc.get(key), dict):
            out[key] = {**doc[key], "format": FORMAT, "kind": "bench"}
    return out


def read(path: Path) -> dict[str, Any]:
    """A results file, checked enough that every reader can trust its shape (a format-1
    file is read as format 2)."""
    try:
        doc = json.loads(path.read_bytes().decode(), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ApplianceError(f"cannot read results {path}: {exc}") from None
    except RecursionError:
        raise ApplianceError(f"cannot read results {path}: nested too deeply to be a results file") from None
    if isinstance(doc, dict) and doc.get("format") == 1:
        doc = _migrate_v1(doc)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ApplianceError(f"{path} is not a results file of format {FORMAT} (or 1)")
    if doc.get("kind") not in KINDS:
        raise ApplianceError(f"{path} is a results file of unknown kind {doc.get('kind')!r} "
                             f"(this tool reads: {', '.join(KINDS)})")
    for side in sides(doc):
        problem = shape_problem(side)
        if problem:
            raise ApplianceError(f"{path} is damaged: {problem}; write it again with `appliance bench`")
    return doc


def _labelled(doc: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(label, run set) of each side of DOC, in the document's order. Read leniently (a
    side may be missing or malformed: shape_problem reports it), written once for
    labelled_sides and sides."""
    found = kind(doc)
    if found == "compare":
        return [("A", doc.get("a")), ("B", doc.get("b"))]
    if found == "tune":
        return [("base", doc.get("base")), *(doc.get("variants") or {}).items()]
    if found == "series":
        return [((side.get("name") or side.get("kernel") or f"#{i}") if isinstance(side, dict) else f"#{i}", side)
                for i, side in enumerate(doc.get("series") or [])]
    if found in ("crosscheck", "bisect"):
        return list((doc.get("channels" if found == "crosscheck" else "sides") or {}).items())
    return [("", doc)]  # a bench, analysis or cost document is a run set


def labelled_sides(doc: Mapping[str, Any]) -> dict[str, RunSet]:
    """The run sets of DOC by a label a person reads: A/B, base and each knob, each kernel
    of a series, each channel; "" for a plain run set (bench, analysis)."""
    return {label: cast(RunSet, side) for label, side in _labelled(doc)}


def sides(doc: Mapping[str, Any]) -> list[Any]:
    """The run sets of a results document, in order (see labelled_sides)."""
    return [side for _, side in _labelled(doc)]


def main_side(doc: Mapping[str, Any]) -> RunSet:
    """The run set a single view shows: A, the base, the first kernel, the first channel."""
    return next(iter(labelled_sides(doc).values()))


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a results file holds")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# the parts of a run set that readers take as objects, and the host facts they take as text
_OBJECTS = ("host", "bundle", "settings", "accel")
_TEXTS = ("host_name", "cpu_model", "qemu_version")


def shape_problem(side: Any) -> str | None:
    """What makes SIDE (one run set) unreadable, or None: its parts of the right types,
    every run an object with ok, warmup and a unique integer index, and a successful one
    its events (name and a finite t_ms) and its phases (finite, not negative, or null)."""
    if not isinstance(side, dict):
        return "it has no list of runs (a run set is not an object)"
    for key in _OBJECTS:
        if key in side and not isinstance(side[key], dict):
            return f"its {key} is {type(side[key]).__name__} {side[key]!r:.40}, not an object"
    host, bundle = side.get("host") or {}, side.get("bundle") or {}
    for key in _TEXTS:
        if host.get(key) is not None and not isinstance(host[key], str):
            return f"its host's {key} is {type(host[key]).__name__}, not text"
    for key in ("cpus", "memory_mib"):
        if bundle.get(key) is not None and (not isinstance(bundle[key], int) or isinstance(bundle[key], bool)):
            return f"its bundle's {key} is {bundle[key]!r:.20}, not a whole number"
    runs = side.get("runs")
    if not isinstance(runs, list):
        return "it has no list of runs"
    seen: set[int] = set()
    for i, run in enumerate(runs):
        problem = _run_problem(run, i, seen)
        if problem:
            return problem
    return None


def _run_problem(run: Any, i: int, seen: set[int]) -> str | None:
    if not isinstance(run, dict) or not isinstance(run.get("ok"), bool) or "warmup" not in run:
        return f"run {i} is not a run record (it needs ok and warmup)"
    index = run.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        return f"run {i} has no integer index"
    if index in seen:
        return f"run {i} repeats index {index}"
    seen.add(index)
    if not run["ok"]:
        return None
    if not (isinstance(run.get("events"), list) and isinstance(run.get("phases_ms"), dict)):
        return f"run {i} succeeded but has no events or phases_ms"
    if not all(isinstance(e, dict) and isinstance(e.get("name"), str) and _number(e.get("t_ms"))
               for e in run["events"]):
        return f"run {i} has an event without a name or a finite t_ms"
    for unit_key in ("phases_ms", "phases_insn"):
        for phase, value in (run.get(unit_key) or {}).items():
            if value is not None and (not _number(value) or value < 0):
                return f"run {i}'s {unit_key} {phase} is {value!r:.20}: not a finite duration"
    return None

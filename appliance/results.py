"""Results JSON: raw per-run events and phases, plus summary statistics.

Raw events are kept so any statistic can be recomputed later (`appliance stats`). A run
set that was interrupted is written with "complete": false, never passed off as complete.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.phases import EXEC, PHASE_NAMES, from_times
from appliance.stats import summarize

FORMAT = 1


def _stats(counted: list[dict[str, Any]], values: list[float | None]) -> dict[str, Any] | None:
    """Statistics of one figure across runs, with outliers named by run index."""
    present = [(run["index"], v) for run, v in zip(counted, values, strict=True) if v is not None]
    result = summarize([v for _, v in present])
    if result is None:
        return None
    out = result.to_dict()
    out["outliers"] = [present[i][0] for i in result.outliers]
    return out


def probe_times(run: dict[str, Any]) -> dict[str, float]:
    """Each probe's time from QEMU's exec, in ms (first occurrence)."""
    times: dict[str, float] = {}
    for event in run["events"]:
        times.setdefault(event["name"], event["t_ms"])
    return times


def counted(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs statistics are made of: successful, and not warm-ups."""
    return [r for r in runs if r["ok"] and not r["warmup"]]


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Statistics over the counted (non-warm-up, successful) runs.

    `phases` are per-run phase durations; `probes` are per-probe times from exec; and
    `phases_from_probe_medians` are phases between those medians, the only phase figures
    the exit channel can give (its probes come from different boots)."""
    runs = counted(runs)
    out: dict[str, Any] = {"phases": {}, "probes": {}}
    for phase in PHASE_NAMES:
        stats = _stats(runs, [r["phases_ms"].get(phase) for r in runs])
        if stats is not None:
            out["phases"][phase] = stats
    names = [n for r in runs for n in probe_times(r) if n != EXEC]
    for name in dict.fromkeys(names):
        stats = _stats(runs, [probe_times(r).get(name) for r in runs])
        if stats is not None:
            out["probes"][name] = stats
    medians = {name: s["median"] for name, s in out["probes"].items()}
    out["phases_from_probe_medians"] = {k: v for k, v in from_times({EXEC: 0.0, **medians}).items() if v is not None}
    for figure in ("qemu_max_rss_kib", "runner_overhead_ms", "uart_us_per_char"):
        stats = _stats(runs, [r.get(figure) for r in runs])
        if stats is not None:
            out[figure] = stats
    memory = guest_memory(runs)
    if memory:
        out["guest_memory_kib"] = memory
    return out


def guest_memory(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage, the median of each /proc/meminfo figure profiled reported (KiB)."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for stage, figures in (run.get("profiled") or {}).get("memory", {}).items():
            for key, value in figures.items():
                values.setdefault(stage, {}).setdefault(key, []).append(float(value))
    return {stage: {k: statistics.median(v) for k, v in figures.items()} for stage, figures in values.items()}


def disturbed(runs: list[dict[str, Any]]) -> int:
    """How many counted boots ran on a busy host (their `host_load` says so)."""
    return sum(1 for r in counted(runs) if (r.get("host_load") or {}).get("disturbed"))


def failure_reasons(runs: list[dict[str, Any]]) -> dict[str, int]:
    """How many boots failed, by the first line of their error."""
    return dict(Counter(str(r["error"]).splitlines()[0] for r in runs if not r["ok"]))


def document(*, host: dict[str, Any], accel: dict[str, str], bundle: dict[str, Any], settings: dict[str, Any],
             runs: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "complete": complete,
        "host": host,
        "accel": accel,
        "bundle": bundle,
        "settings": settings,
        "runs": runs,
        "failed_runs": sum(not r["ok"] for r in runs),
        "failures": failure_reasons(runs),
        "summary": summary(runs),
        "disturbed_runs": disturbed(runs),
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode())


def read(path: Path) -> dict[str, Any]:
    """A results file, checked enough that every reader can trust its shape."""
    try:
        doc = json.loads(path.read_bytes().decode())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApplianceError(f"cannot read results {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ApplianceError(f"{path} is not a results file of format {FORMAT}")
    for side in sides(doc):
        problem = shape_problem(side)
        if problem:
            raise ApplianceError(f"{path} is damaged: {problem}; write it again with `appliance bench`")
    return doc


def sides(doc: dict[str, Any]) -> list[Any]:
    """The run sets of a results document: one (bench, analyze), A and B (compare), or
    one per channel (crosscheck)."""
    if "comparison" in doc:
        return [doc.get("a"), doc.get("b")]
    if "series" in doc:
        return list(doc["series"])
    if "tune" in doc:
        return [doc.get("base"), *(doc.get("variants") or {}).values()]
    if "channels" in doc and isinstance(doc["channels"], dict):
        return list(doc["channels"].values())
    return [doc]


def labelled_sides(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The run sets of DOC by a label a person reads: A/B, base and each knob, each kernel
    of a series, each channel; "" for a plain run set."""
    if "comparison" in doc:
        return {"A": doc["a"], "B": doc["b"]}
    if "tune" in doc:
        return {"base": doc["base"], **doc.get("variants", {})}
    if "series" in doc:
        return {side.get("name") or side["kernel"]: side for side in doc["series"]}
    if "channels" in doc:
        return dict(doc["channels"])
    return {"": doc}


def main_side(doc: dict[str, Any]) -> dict[str, Any]:
    """The run set a single view shows: A, the base, the first kernel, the first channel."""
    return next(iter(labelled_sides(doc).values()))


def shape_problem(side: Any) -> str | None:
    """What makes SIDE (one run set) unreadable, or None: every run needs ok and warmup,
    and a successful one its events and phases."""
    runs = side.get("runs") if isinstance(side, dict) else None
    if not isinstance(runs, list):
        return "it has no list of runs"
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("ok"), bool) or "warmup" not in run:
            return f"run {i} is not a run record (it needs ok and warmup)"
        if run["ok"] and not (isinstance(run.get("events"), list) and isinstance(run.get("phases_ms"), dict)):
            return f"run {i} succeeded but has no events or phases_ms"
        if run["ok"] and not all(isinstance(e, dict) and {"name", "t_ms"} <= set(e) for e in run["events"]):
            return f"run {i} has an event without name or t_ms"
    return None

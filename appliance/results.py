"""Results JSON: raw per-run events and phases, plus summary statistics.

Raw events are kept so any statistic can be recomputed later. A run set that was
interrupted is written with "complete": false, never passed off as complete.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .fsutil import atomic_write
from .measure import BootRun
from .phases import PHASE_NAMES
from .stats import summarize

FORMAT = 1


def run_record(index: int, warmup: bool, run: BootRun | None, error: str | None = None,
               console_tail: str = "") -> dict[str, Any]:
    record: dict[str, Any] = {"index": index, "warmup": warmup, "ok": run is not None}
    if run is None:
        record.update(error=error, console_tail=console_tail)
        return record
    start = run.events[0].host_time_ns
    record.update(
        start_ns=start,
        events=[{"name": e.name, "t_ms": (e.host_time_ns - start) / 1e6, "source": e.source} for e in run.events],
        phases_ms=run.phases,
        guest_probes=[{"name": n, "boottime_ns": ns} for n, ns in run.console_probes],
        qemu_max_rss_kib=run.max_rss_kib,
        payload_status=run.payload_status,
        warnings=run.warnings,
    )
    return record


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-phase statistics over the counted (non-warm-up, successful) runs."""
    counted = [r for r in runs if r["ok"] and not r["warmup"]]
    out: dict[str, Any] = {}
    for phase in PHASE_NAMES:
        values = [r["phases_ms"][phase] for r in counted if r["phases_ms"].get(phase) is not None]
        stats = summarize(values)
        if stats is not None:
            out[phase] = stats.to_dict()
    rss = summarize([float(r["qemu_max_rss_kib"]) for r in counted])
    if rss is not None:
        out["qemu_max_rss_kib"] = asdict(rss)
    return out


def document(*, host: dict[str, Any], accel: dict[str, str], bundle: dict[str, Any], settings: dict[str, Any],
             runs: list[dict[str, Any]], complete: bool) -> dict[str, Any]:
    failed = [r for r in runs if not r["ok"]]
    return {
        "format": FORMAT,
        "complete": complete,
        "host": host,
        "accel": accel,
        "bundle": bundle,
        "settings": settings,
        "runs": runs,
        "failed_runs": len(failed),
        "summary": summary(runs),
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    atomic_write(path, (json.dumps(doc, indent=1) + "\n").encode())


def read(path: Path) -> dict[str, Any]:
    from .errors import ApplianceError

    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ApplianceError(f"cannot read results {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ApplianceError(f"{path} is not a results file of format {FORMAT}")
    return doc

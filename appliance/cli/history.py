"""`appliance history`: the run sets the store holds, a phase's median and interval per
run set over time, the change points in them, as a table, --json or an SVG; `appliance
history import FILES` records results files written before (or by another machine)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import results
from appliance.cli.options import count, fraction, record_options
from appliance.cli.output import say
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.phases import PHASE_NAMES

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported when a verb uses it: `appliance --help` stays quick
    from appliance.store import query, trend

FILTERS = ("template", "machine", "accel", "label", "kind", "side", "host_name", "kernel_release", "channel",
           "bundle_digest", "qemu_version", "cpus", "memory_mib")


def cmd_history(args: argparse.Namespace) -> int:
    from appliance.analysis import trendplot
    from appliance.store import db, query, trend

    if args.phase not in PHASE_NAMES:
        raise ApplianceError(f"--phase {args.phase!r} is not a phase: one of {', '.join(PHASE_NAMES)}")
    engine, url = db.open_store(args.db)
    where = {key: getattr(args, key) for key in FILTERS if getattr(args, key) is not None}
    sets = query.run_set_list(engine, url, where, args.limit)
    if not sets:
        raise ApplianceError(f"no run sets in {db.shown(url)}{' match ' + _filters(where) if where else ''}: "
                             "bench something (it records by default) or `appliance history import FILES`")
    points = query.points(engine, url, sets, args.phase)
    groups = _groups(points)
    changes = {key: trend.change_points([p.median for p in group], min_magnitude=args.min_change)
               if not args.no_changes else [] for key, group in groups.items()}
    rows = [_row(point, {c.index: c for c in changes[key]}.get(i))
            for key, group in groups.items() for i, point in enumerate(group)]
    lines = [f"{'id':>6} {'recorded':<16} {'label':<14} {'template':<18} {'machine':<10} {'accel':<5} {'n':>4} "
             f"{'median':>9} {'95% CI':>19}  {args.phase}"]
    for row in rows:
        ci = f"{row['ci'][0]:.1f}-{row['ci'][1]:.1f}" if row["ci"] else "-"
        step = f"  <- step {row['change']['relative'] * 100:+.1f}% (p={row['change']['pvalue']:.1g})" if row["change"] else ""
        lines.append(f"{row['id']:>6} {row['recorded_at'][:16]:<16} {row['label'][:14]:<14} {str(row['template'])[:18]:<18} "
                     f"{str(row['machine'])[:10]:<10} {str(row['accel'])[:5]:<5} {row['n']:>4} {row['median']:>9.1f} "
                     f"{ci:>19}{step}")
    if len(groups) > 1:
        lines.append(f"({len(groups)} series: run sets of different templates, machines, hosts or QEMU versions are "
                     "never compared; change points are found within each)")
    say("\n".join(lines), store=db.shown(url), phase=args.phase, run_sets=rows)
    if args.svg:
        key, group = max(groups.items(), key=lambda kv: len(kv[1]))
        atomic_write(Path(args.svg), trendplot.render(group, changes[key], args.phase,
                                                      f"{args.phase} over time: {_series_name(group[0])}").encode())
        say(f"svg: {args.svg}", outputs={"svg": args.svg})
    return 0


def _filters(where: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def _groups(points: list[query.Point]) -> dict[tuple[Any, ...], list[query.Point]]:
    from appliance.store import query

    groups: dict[tuple[Any, ...], list[query.Point]] = {}
    for point in points:
        groups.setdefault(tuple(point.run_set.dims.get(k) for k in query.SERIES_KEY), []).append(point)
    return groups


def _row(point: query.Point, change: trend.Change | None) -> dict[str, Any]:
    """One run set's line: its dimensions, the phase's figures, and the step Otava found
    at it (CHANGE: this run set is the first after it)."""
    return {"id": point.run_set.id, "recorded_at": point.run_set.recorded_at.isoformat(), **point.run_set.dims,
            "label": point.run_set.dims.get("label") or "", "n": point.n, "median": point.median,
            "ci": list(point.ci) if point.ci else None,
            "change": {"relative": change.relative, "pvalue": change.pvalue, "before_ms": change.before,
                       "after_ms": change.after} if change else None}


def _series_name(point: query.Point) -> str:
    dims = point.run_set.dims
    return f"{dims.get('template')} on {dims.get('machine')} ({dims.get('accel')}, {dims.get('host_name')})"


def cmd_import(args: argparse.Namespace) -> int:
    from appliance.store import db, record

    engine, url = db.open_store(args.db)
    lines = []
    for name in args.files:
        doc = results.read(Path(name))
        done = record.record(engine, url, doc, args.import_label or args.label or "",
                             source=str(Path(name).resolve()))
        lines.append(f"{name}: {'recorded' if done.new else 'already in the store'} as run set(s) "
                     f"{', '.join(map(str, done.run_set_ids))}")
    say("\n".join(lines), store=db.shown(url), files=lines)
    return 0


def register(verbs: Any) -> None:
    p = verbs.add_parser("history", help="run sets over time from the results store: a phase's medians, change points")
    sub = p.add_subparsers(dest="history_verb", metavar="import", help="record results files written before")
    imp = sub.add_parser("import", help="record results files written before (each file once)")
    imp.add_argument("files", nargs="+", metavar="FILE", help="results JSON files")
    record_options(imp, recording=False)
    imp.add_argument("--label", dest="import_label", help="record the files under this label (e.g. the revision "
                     "that wrote them)")
    imp.add_argument("--json", action="store_true", help="print the result as one JSON document on stdout")
    imp.set_defaults(func=cmd_import)
    for key in FILTERS:
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=int if key in ("cpus", "memory_mib") else str,
                       help=f"only run sets whose {key} is this")
    p.add_argument("--phase", default="to_init", help="the phase to follow (default to_init)")
    p.add_argument("--limit", type=count, default=0, help="only the newest N run sets")
    p.add_argument("--svg", metavar="FILE", help="write the longest series as an SVG trend plot")
    p.add_argument("--min-change", type=fraction, default=0.01, help="Otava's minimum relative change for a change point "
                   "(default 0.01: smaller steps are below what boot-time noise lets one act on)")
    p.add_argument("--no-changes", action="store_true", help="skip change-point detection (it imports SciPy)")
    record_options(p, recording=False)
    p.set_defaults(func=cmd_history)

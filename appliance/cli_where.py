"""The verbs that show *where* boot time goes: analyze, tslog, profile, redox, export,
report. Kept apart from cli.py (which measures *how long*); cli.py registers them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import analyze, exports, flame, results, spans, tslog
from .errors import ApplianceError
from .fsutil import atomic_write
from .spans import Span

FORMATS = ("svg", "chrome", "speedscope", "collapsed")


def render_format(fmt: str, items: list[Span], title: str, total_us: float | None = None, subtitle: str = "") -> bytes:
    """SPANS in one of FORMATS, checked before anything is written."""
    bad = spans.problems(items)
    if bad:
        raise ApplianceError(f"cannot export: {bad[0]} ({len(bad)} problem(s))")
    if fmt == "svg":
        return flame.render(items, title, total_us, subtitle).encode()
    if fmt == "collapsed":
        return ("\n".join(spans.collapsed(items)) + "\n").encode()
    if fmt == "chrome":
        doc = exports.chrome_trace(items, title)
        problems = exports.check_chrome_trace(doc)
    else:
        doc = exports.speedscope(items, title)
        problems = exports.check_speedscope(doc)
    if problems:
        raise ApplianceError(f"the {fmt} export breaks its format's rules: {problems[0]}")
    return json.dumps(doc).encode()


def _write_outputs(args: argparse.Namespace, items: list[Span], title: str, total_us: float | None = None,
                   subtitle: str = "") -> None:
    for fmt in FORMATS:
        target = getattr(args, fmt, None)
        if target:
            atomic_write(Path(target), render_format(fmt, items, title, total_us, subtitle))
            print(f"{fmt}: {target}")


def cmd_analyze(args: argparse.Namespace, load: Callable[[str, argparse.Namespace], Any],
                accel: Callable[[argparse.Namespace], Any], qemu: Callable[[], str]) -> int:
    if args.n < 1:
        raise ApplianceError("-n must be at least 1")
    target = load(args.bundle, args)
    choice = accel(args)
    print(f"analyzing {args.bundle}: {args.n} boots with {analyze.DEBUG_CMDLINE}"
          f"{'' if args.no_baseline else f' and {args.n} plain boots, interleaved'} (+1 warm-up each)",
          file=sys.stderr)
    doc = analyze.analyze(target, qemu_path=qemu(), accel=choice, n=args.n, baseline=not args.no_baseline,
                          timeout=args.timeout)
    out = Path(args.output or f"analysis-{Path(args.bundle).resolve().name}.json")
    results.write(out, doc)
    print(analyze.render(doc["analysis"], color=sys.stdout.isatty(), top=args.top))
    items = analyze.spans_of(doc)
    _write_outputs(args, items, f"{doc['bundle']['name']} boot")
    print(f"results: {out}")
    return 0


def cmd_tslog(args: argparse.Namespace) -> int:
    try:
        text = Path(args.dump).read_text(errors="replace")
    except OSError as exc:
        raise ApplianceError(f"cannot read {args.dump}: {exc.strerror}") from None
    if args.tsc_hz <= 0:
        raise ApplianceError("--tsc-hz must be the TSC frequency in Hz, e.g. 2.6e9 (machdep.tsc_freq)")
    prof = tslog.profile(text, args.tsc_hz, args.buffer_records)
    if not prof.records:
        raise ApplianceError(f"{args.dump} holds no tslog records ({prof.problems[0] if prof.problems else 'empty'})")
    for problem in prof.problems[:20]:
        print(f"warning: {problem}", file=sys.stderr)
    if len(prof.problems) > 20:
        print(f"warning: ... and {len(prof.problems) - 20} more", file=sys.stderr)
    kernel = [s for s in prof.spans if s.track == "kernel" and s.depth == 0]
    print(f"{prof.records} records, {len(prof.threads)} threads, {prof.total_us / 1000:.1f} ms"
          f"{' (truncated)' if prof.truncated else ''}")
    weights = spans.collapsed([s for s in prof.spans if s.track == "kernel"] if kernel else prof.spans)
    print("heaviest stacks (self time, ms):")
    for line in weights[:args.top]:
        path, us = line.rsplit(" ", 1)
        print(f"{int(us) / 1000:10.2f}  {path}")
    subtitle = "truncated dump" if prof.truncated else ""
    _write_outputs(args, prof.spans, f"{Path(args.dump).name} boot", prof.total_us, subtitle)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    doc = results.read(Path(args.results))
    side = doc["a"] if "comparison" in doc else doc
    items = analyze.spans_of(side)
    if not items:
        raise ApplianceError(f"{args.results} has no successful run to export")
    atomic_write(Path(args.output), render_format(args.format, items, f"{side['bundle']['name']} boot"))
    print(f"{args.format}: {args.output}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import report

    doc = results.read(Path(args.results))
    atomic_write(Path(args.output), report.render(doc, Path(args.results).name).encode())
    print(f"report: {args.output}")
    return 0


def add_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--svg", metavar="FILE", help="write the flamechart (self-contained SVG)")
    p.add_argument("--chrome", metavar="FILE", help="write Chrome Trace Event JSON (Perfetto UI)")
    p.add_argument("--speedscope", metavar="FILE", help="write a speedscope JSON profile")
    p.add_argument("--collapsed", metavar="FILE", help="write collapsed stacks (flamegraph.pl, inferno)")


def register(verbs: Any, boot_options: Callable[[argparse.ArgumentParser], None],
             load: Callable[[str, argparse.Namespace], Any], accel: Callable[[argparse.Namespace], Any],
             qemu: Callable[[], str]) -> None:
    p = verbs.add_parser("analyze", help="boot with initcall_debug: timeline, top initcalls, flamechart")
    p.add_argument("bundle")
    p.add_argument("-n", type=int, default=5, help="debug boots (and as many plain ones; default 5)")
    p.add_argument("--no-baseline", action="store_true", help="skip the plain boots (the console's cost is then unknown)")
    p.add_argument("--top", type=int, default=15, help="how many activities to list (default 15)")
    p.add_argument("-o", "--output", help="results JSON with the analysis (default analysis-<bundle>.json)")
    add_outputs(p)
    boot_options(p)
    p.set_defaults(func=lambda a: cmd_analyze(a, load, accel, qemu), timeout=180.0)
    p = verbs.add_parser("tslog", help="a FreeBSD/NetBSD tslog dump: stacks, flamechart, exports")
    p.add_argument("dump", help="the output of `sysctl -b debug.tslog`")
    p.add_argument("--tsc-hz", type=float, required=True, help="TSC frequency in Hz (machdep.tsc_freq)")
    p.add_argument("--buffer-records", type=int, default=tslog.DEFAULT_BUFFER,
                   help="the kernel's tslog buffer size: a dump this long is reported as truncated")
    p.add_argument("--top", type=int, default=15)
    add_outputs(p)
    p.set_defaults(func=cmd_tslog)
    p = verbs.add_parser("export", help="a results JSON's boot as svg, chrome, speedscope or collapsed")
    p.add_argument("results")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_export)
    p = verbs.add_parser("report", help="one self-contained HTML report of a results JSON")
    p.add_argument("results")
    p.add_argument("-o", "--output", default="report.html")
    p.set_defaults(func=cmd_report)

"""The verbs that show *where* boot time goes: analyze, tslog, profile, redox, export,
report. Kept apart from main.py (which measures *how long*); main.py registers them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance import guestlog, results
from appliance.analysis import analyze, exports, flame, kmsg, sampled, spans, tslog
from appliance.analysis.spans import Span
from appliance.assemble import minikernel
from appliance.boot import measure
from appliance.boot.qemu import BootSpec
from appliance.cli import options
from appliance.cli.options import boot_options, choose_accel, load_bundle, positive, record_options, record_results, store_for
from appliance.cli.output import say
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.machines import Accel
from appliance.results import RunSet
from appliance.runs import debugboots

FORMATS = ("svg", "chrome", "speedscope", "collapsed")
# The names the tools expect by default: speedscope picks its importer by the file name
# and reads a Chrome trace only as *.trace.json; flamegraph.pl and inferno read *.folded.
SUFFIXES = {"svg": ".svg", "chrome": ".trace.json", "speedscope": ".speedscope.json", "collapsed": ".folded",
            "tslog-user": ".tslog-user.txt"}


def default_name(results_path: str, fmt: str) -> str:
    """RESULTS.json -> RESULTS<suffix of FMT>, beside it."""
    path = Path(results_path)
    return str(path.with_name(path.name.removesuffix(".json") + SUFFIXES[fmt]))


def render_format(fmt: str, items: list[Span], title: str, total_us: float | None = None, subtitle: str = "",
                  counters: list[exports.Counter] | None = None) -> bytes:
    """SPANS in one of FORMATS, checked before anything is written; COUNTERS (guest
    memory) go into the Chrome trace."""
    bad = spans.problems(items)
    if bad:
        raise ApplianceError(f"cannot export: {bad[0]} ({len(bad)} problem(s))")
    if fmt == "svg":
        return flame.render(items, title, total_us, subtitle).encode()
    if fmt == "collapsed":
        return ("\n".join(spans.collapsed(items)) + "\n").encode()
    if fmt == "chrome":
        doc = exports.chrome_trace(items, title, counters or [])
        problems = exports.check_chrome_trace(doc)
    else:
        doc = exports.speedscope(items, title)
        problems = exports.check_speedscope(doc)
    if problems:
        raise ApplianceError(f"the {fmt} export breaks its format's rules: {problems[0]}")
    return json.dumps(doc).encode()


def _write_outputs(args: argparse.Namespace, items: list[Span], title: str, total_us: float | None = None,
                   subtitle: str = "", counters: list[exports.Counter] | None = None) -> None:
    for fmt in FORMATS:
        target = getattr(args, fmt, None)
        if target:
            atomic_write(Path(target), render_format(fmt, items, title, total_us, subtitle, counters))
            say(f"{fmt}: {target}", outputs={fmt: target})


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ApplianceError("-n must be at least 1")
    target = load_bundle(args.bundle, args)
    choice = choose_accel(args)
    print(f"analyzing {args.bundle}: {args.n} boots with {analyze.debug_cmdline(target, args.source)}"
          f"{'' if args.no_baseline else f' and {args.n} plain boots, interleaved'} (+1 warm-up each)",
          file=sys.stderr)
    store = store_for(args)
    boots = debugboots.boot(target, choice, args.n, debug_cmdline=analyze.debug_cmdline(target, args.source),
                            baseline=not args.no_baseline, timeout=args.timeout, append=args.append or "")
    doc = analyze.document(target, boots.counted_debug(), boots.counted_plain(), boots.run_set(), args.source)
    out = Path(args.output or f"analysis-{Path(args.bundle).resolve().name}.json")
    results.write(out, doc)
    record_results(args, store, doc, str(out.resolve()))
    say(analyze.render(doc["analysis"], color=sys.stdout.isatty(), top=args.top), analysis=doc["analysis"])
    items = analyze.spans_of(doc)
    _write_outputs(args, items, f"{doc['bundle']['name']} boot", counters=analyze.counters_of(doc))
    say(f"results: {out}", results=str(out))
    return 0


def cmd_initcalls(args: argparse.Namespace) -> int:
    """analyze's tables, timeline and exports for initcall_debug logs from anywhere."""
    logs = [kmsg.normalize(_read_text(path)) for path in args.logs]
    for path, log in zip(args.logs, logs, strict=True):
        print(f"{path}: {log.stamped} lines with printk times; read as {log.described()}", file=sys.stderr)
    texts = [log.text for log in logs]
    try:
        analysis = analyze.summarize_logs(texts)
    except ValueError as exc:
        raise ApplianceError(f"{args.logs[0]}: {exc}") from None
    if not analysis["initcalls"]:
        raise ApplianceError(f"{', '.join(args.logs)}: no initcall_debug lines (`calling  fn+0x0/0x.. @ 1`): "
                             "boot with initcall_debug (and ignore_loglevel or loglevel=8)")
    say(analyze.render(analysis, color=sys.stdout.isatty(), top=args.top), analysis=analysis)
    items = [analyze.span_from(s) for s in analysis["spans"]]
    _write_outputs(args, items, f"{Path(args.logs[0]).name} kernel")
    return 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError as exc:
        raise ApplianceError(f"cannot read {path}: {exc.strerror}") from None


def cmd_tslog(args: argparse.Namespace) -> int:
    if args.tsc_hz <= 0:
        raise ApplianceError("--tsc-hz must be the TSC frequency in Hz, e.g. 2.6e9 (machdep.tsc_freq)")
    if not args.dump and not args.user:
        raise ApplianceError("give a tslog dump, --user USERDUMP, or both")
    items: list[Span] = []
    total_us = None
    truncated = False
    t0 = None
    if args.dump:
        text = _read_text(args.dump)
        found = tslog.timeline(text, args.tsc_hz, args.buffer_records, pre_record=not args.no_pre_record)
        if not found.records:
            raise ApplianceError(f"{args.dump} holds no tslog records "
                                 f"({found.problems[0] if found.problems else 'empty'})")
        _warn(found.problems, None if args.all_warnings else 20)
        say(None, problems=found.problems)
        kernel = [s for s in found.spans if s.track == "kernel"]
        heaviest = [line.rsplit(" ", 1) for line in spans.collapsed(kernel or found.spans)[:args.top]]
        say(f"{found.records} records, {len(found.threads)} threads, {found.total_us / 1000:.1f} ms"
            f"{' (truncated)' if found.truncated else ''}\nheaviest stacks (self time, ms):\n"
            + "\n".join(f"{int(us) / 1000:10.2f}  {path}" for path, us in heaviest),
            records=found.records, threads=len(found.threads), total_ms=found.total_us / 1000, truncated=found.truncated,
            heaviest_self_ms=[{"stack": path, "ms": int(us) / 1000} for path, us in heaviest])
        items, total_us, truncated = list(found.spans), found.total_us, found.truncated
        t0 = found.t0_tsc
    if args.user:
        user, problems = tslog.user_spans(_read_text(args.user), args.tsc_hz, t0)
        _warn(problems, None if args.all_warnings else 20)
        say(None, user_problems=problems)
        if not user:
            raise ApplianceError(f"{args.user} holds no tslog_user records")
        processes = sum(s.depth > 0 for s in user) + 1
        user_ms = (max(s.end_us for s in user) - min(s.start_us for s in user)) / 1000
        say(f"userland: {processes} processes, {user_ms:.1f} ms", user_processes=processes, user_ms=user_ms)
        items += user
        total_us = None
    name = Path(args.dump or args.user).name
    _write_outputs(args, items, f"{name} boot", total_us, "truncated dump" if truncated else "")
    return 0


def _warn(problems: list[str], most: int | None = 20) -> None:
    """PROBLEMS as warnings, the first MOST of them (None: all), saying how to see the rest."""
    shown = problems if most is None else problems[:most]
    for problem in shown:
        print(f"warning: {problem}", file=sys.stderr)
    if len(problems) > len(shown):
        print(f"warning: ... and {len(problems) - len(shown)} more (--all-warnings lists them; --json holds "
              "them all under problems)", file=sys.stderr)


def _symbols_for(target: Any, explicit: str | None) -> Path:
    """--symbols, or the System.map the minimal kernel recipe left in the cache."""
    if explicit:
        return Path(explicit)
    path = minikernel.system_map(target.kernel_facts)
    if path is not None:
        return path
    raise ApplianceError("no symbols for this kernel: give --symbols (a System.map or `nm -CS vmlinux` output); "
                         "Debian's packaged System.map is a stub, so profile a minimal-kernel bundle "
                         "(kernel = \"minimal\") or use the -dbg package's vmlinux")


def _read_symbols(path: Path) -> sampled.Symbols:
    symbols, problems = sampled.parse_symbols(_read_text(str(path)))
    if not symbols.starts:
        raise ApplianceError(f"{path} has no code symbols ({problems[0] if problems else 'empty'})")
    return symbols


def _print_profile(lines: list[str], top: int, unit: str) -> None:
    total = sum(int(line.rsplit(" ", 1)[1]) for line in lines) or 1
    leaves: dict[str, int] = {}
    for line in lines:
        path, weight = line.rsplit(" ", 1)
        leaf = path.rsplit(";", 1)[-1]
        leaves[leaf] = leaves.get(leaf, 0) + int(weight)
    ranked = sorted(leaves.items(), key=lambda kv: -kv[1])[:top]
    say(f"{'samples':>8} {'share':>6}  function ({unit})\n"
        + "\n".join(f"{count:8d} {count / total * 100:5.1f}%  {name}" for name, count in ranked),
        top_functions=[{"function": name, "samples": count, "share": count / total} for name, count in ranked])


def _profile_outputs(args: argparse.Namespace, lines: list[str], timeline: list[Span], title: str,
                     unit_us: float) -> None:
    if args.svg:  # the flamegraph: merged stacks, width = samples
        graph = sampled.flamegraph_spans(lines, unit_us)
        atomic_write(Path(args.svg), flame.render(graph, f"{title}: flamegraph", subtitle="width: samples x interval, "
                                                  "merged by stack (not time-ordered)").encode())
        say(f"svg: {args.svg}", outputs={"svg": args.svg})
    if args.collapsed:
        atomic_write(Path(args.collapsed), ("\n".join(lines) + "\n").encode())
        say(f"collapsed: {args.collapsed}", outputs={"collapsed": args.collapsed})
    for fmt in ("chrome", "speedscope"):
        if getattr(args, fmt):
            atomic_write(Path(getattr(args, fmt)), render_format(fmt, timeline, title))
            say(f"{fmt}: {getattr(args, fmt)}", outputs={fmt: getattr(args, fmt)})
    if args.flamechart:
        atomic_write(Path(args.flamechart), render_format("svg", timeline, f"{title}: samples in time order"))
        say(f"flamechart: {args.flamechart}", outputs={"flamechart": args.flamechart})


def cmd_profile(args: argparse.Namespace) -> int:
    from appliance.boot import sampler

    target = load_bundle(args.bundle, args)
    symbols = _read_symbols(_symbols_for(target, args.symbols))
    choice = choose_accel(args)
    clock = options.clock_of(args)
    if clock.counts or args.diff:
        return _profile_counted(args, target, symbols, choice.accel, clock)
    if args.interval_ms <= 0:
        raise ApplianceError("--interval-ms must be positive")
    spec = BootSpec(target, choice.accel, args.timeout, extra_cmdline=" ".join(filter(None, ("nokaslr", args.append))))
    boot = sampler.sample_boot(spec, args.interval_ms)
    samples = [sampled.Sample(at, pc) for at, pc in boot.samples]  # host ns as the time base (GHz = 1)
    if not samples:
        raise ApplianceError("the boot ended before the first sample: lower --interval-ms")
    lines = sampled.collapsed(samples, symbols)
    stop = sorted(boot.stop_us)[len(boot.stop_us) // 2] if boot.stop_us else 0.0
    say(f"{len(samples)} samples of the vCPU's instruction pointer every {args.interval_ms:g} ms "
        f"(gdbstub, {choice.accel}); the sampled boot took {boot.wall_ms:.0f} ms, each sample stopped the vCPU "
        f"for {stop:.0f} us (median)", samples=len(samples), boot_ms=boot.wall_ms, stop_us_median=stop)
    _print_profile(lines, args.top, "self samples")
    timeline = sampled.timeline_spans(samples, symbols, 1e9)
    _profile_outputs(args, lines, timeline, f"{target.name} boot profile", args.interval_ms * 1000)
    return 0


def _profile_counted(args: argparse.Namespace, target: Any, symbols: sampled.Symbols, accel: Accel,
                     clock: Any) -> int:
    """profile on the instruction clock: the plugin notes the guest PC every --every
    instructions, so the profile is the same on every run (under virtual time exactly);
    with --diff OTHER, which functions gained or lost instructions from this bundle to OTHER."""
    from appliance.clocks import Clock

    if not clock.counts:
        clock = Clock.VIRTUAL  # --diff compares work, not time: on the instruction clock
    if args.every < 1000:
        raise ApplianceError("--every must be at least 1000 instructions (a sample every few hundred slows QEMU "
                             "down without sharpening the profile)")
    base = _counted_samples(target, symbols, accel, clock, args)
    if not args.diff:
        lines = [f"{stack} {hits}" for stack, hits in sorted(base.items(), key=lambda kv: (-kv[1], kv[0]))]
        say(f"{sum(base.values())} samples of the guest PC, one every {args.every} instructions ({clock} clock; "
            "a sample names the translation block running when the count crossed the mark)",
            samples=sum(base.values()), every=args.every, clock=str(clock))
        _print_profile(lines, args.top, f"self samples x {args.every} instructions")
        _profile_outputs(args, lines, [], f"{target.name} boot profile ({clock} clock)", args.every / 1000)
        return 0
    other = load_bundle(args.diff, args)
    other_symbols = _read_symbols(_symbols_for(other, args.diff_symbols or args.symbols))
    changed = _counted_samples(other, other_symbols, accel, clock, args)
    rows = sampled.diff(base, changed)
    say(f"instructions gained from {target.name} to {other.name} by function (samples x {args.every}; "
        f"{clock} clock):\n" + sampled.diff_table(rows, args.every, args.top),
        diff=[{"function": f, "a": a, "b": b, "delta_instructions": (b - a) * args.every} for f, a, b in rows])
    if args.collapsed:  # flamegraph.pl's difffolded form: STACK COUNT_A COUNT_B
        text = "".join(f"{stack} {base.get(stack, 0)} {changed.get(stack, 0)}\n"
                       for stack in sorted(set(base) | set(changed)))
        atomic_write(Path(args.collapsed), text.encode())
        say(f"collapsed (difffolded): {args.collapsed}", outputs={"collapsed": args.collapsed})
    return 0


def _counted_samples(target: Any, symbols: sampled.Symbols, accel: Accel, clock: Any,
                     args: argparse.Namespace) -> dict[str, int]:
    """One boot of TARGET with the plugin sampling: collapsed stack -> hits."""
    spec = BootSpec(target, accel, args.timeout, extra_cmdline=args.append or "", clock=clock,
                    sample_every=args.every)
    run = measure.boot(spec)
    if not run.samples:
        raise ApplianceError("the instruction clock's plugin noted no samples: the boot ran fewer than --every "
                             "instructions, or QEMU did not exit cleanly")
    return sampled.counted(run.samples, symbols)


def cmd_redox(args: argparse.Namespace) -> int:
    symbols = _read_symbols(Path(args.nm))
    samples, problems = sampled.parse_samples(_read_text(args.samples))
    _warn(problems)
    if not samples:
        raise ApplianceError(f"{args.samples} holds no samples (lines `TSC IP [RET ...]`)")
    if args.ghz <= 0:
        raise ApplianceError("--ghz must be the CPU's TSC frequency in GHz, e.g. 2.6")
    lines = sampled.collapsed(samples, symbols)
    span_s = (max(s.tsc for s in samples) - min(s.tsc for s in samples)) / (args.ghz * 1e9)
    say(f"{len(samples)} samples over {span_s * 1000:.1f} ms", samples=len(samples), span_ms=span_s * 1000)
    _print_profile(lines, args.top, "self samples")
    timeline = sampled.timeline_spans(samples, symbols, args.ghz * 1e9)
    interval_us = span_s * 1e6 / max(len(samples) - 1, 1)
    _profile_outputs(args, lines, timeline, f"{Path(args.samples).name} kernel profile", interval_us)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    doc = results.read(Path(args.results))
    side = results.main_side(doc)
    args.output = args.output or default_name(args.results, args.format)
    if args.format == "tslog-user":  # profiled's process timeline, for `appliance tslog --user`
        run = analyze.median_run(side)
        procs = (run.get("profiled") or {}).get("processes") if run else None
        if not procs:
            raise ApplianceError(f"{args.results} has no process timeline: boot a template with [profiled]")
        text = guestlog.to_tslog_user([guestlog.Process(**p) for p in procs])
        atomic_write(Path(args.output), text.encode())
        say(f"tslog-user: {args.output} (times in ns: read it with --tsc-hz 1e9)", outputs={"tslog-user": args.output})
        return 0
    items = analyze.spans_of(side)
    if not items:
        raise ApplianceError(f"{args.results} has no successful run to export")
    atomic_write(Path(args.output), render_format(args.format, items, f"{side['bundle']['name']} boot",
                                                  counters=analyze.counters_of(side)))
    say(f"{args.format}: {args.output}", outputs={args.format: args.output})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from appliance.analysis import report

    doc = results.read(Path(args.results))
    trend = "" if args.no_trend else _trend_svg(args, results.main_side(doc))
    atomic_write(Path(args.output), report.render(doc, Path(args.results).name, trend).encode())
    say(f"report: {args.output}{' (with the trend from the results store)' if trend else ''}",
        outputs={"report": args.output})
    return 0


def _trend_svg(args: argparse.Namespace, side: RunSet) -> str:
    """The same appliance measured the same way, over time, from the results store: an
    SVG of its phase medians with Otava's steps; "" when the store holds fewer than two
    such run sets."""
    from appliance.analysis import trendplot
    from appliance.store import db, query, record, trend

    engine, url = db.open_store(args.db)
    dims = record.dimensions(side, "bench", "", "")
    where = {k: dims[k] for k in query.SERIES_KEY if dims.get(k) is not None}
    points = query.points(engine, url, query.run_set_list(engine, url, where), args.trend_phase)
    if len(points) < 2:
        return ""
    steps = trend.change_points([p.median for p in points], min_magnitude=0.01)
    return trendplot.render(points, steps, args.trend_phase, f"{dims.get('template')}: {args.trend_phase} over time")


def add_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--svg", metavar="FILE", help="write the flamechart (self-contained SVG)")
    p.add_argument("--chrome", metavar="FILE", help="write Chrome Trace Event JSON (Perfetto UI)")
    p.add_argument("--speedscope", metavar="FILE", help="write a speedscope JSON profile")
    p.add_argument("--collapsed", metavar="FILE", help="write collapsed stacks (flamegraph.pl, inferno)")


def register(verbs: Any) -> None:
    p = verbs.add_parser("analyze", help="boot with initcall_debug: timeline, top initcalls, flamechart")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--source", choices=analyze.SOURCES, default="console",
                   help="where initcall times come from: initcall_debug in the kernel log (console), or Linux's "
                   "boot-time tracing into the ftrace buffer, read by profiled (ftrace: no console cost)")
    p.add_argument("-n", type=int, default=5, help="debug boots (and as many plain ones; default 5)")
    p.add_argument("--no-baseline", action="store_true", help="skip the plain boots (the console's cost is then unknown)")
    p.add_argument("--top", type=int, default=15, help="how many activities to list (default 15)")
    p.add_argument("-o", "--output", help="results JSON with the analysis (default analysis-<bundle>.json)")
    add_outputs(p)
    boot_options(p)
    record_options(p)
    p.set_defaults(func=cmd_analyze, timeout=180.0)
    p = verbs.add_parser("initcalls", help="initcall_debug logs from anywhere (console, dmesg): analyze's tables, no boot")
    p.add_argument("logs", nargs="+", metavar="LOG", help="kernel logs with printk times and initcall_debug lines")
    p.add_argument("--top", type=int, default=15, help="how many activities to list (default %(default)s)")
    add_outputs(p)
    p.set_defaults(func=cmd_initcalls)
    p = verbs.add_parser("tslog", help="a FreeBSD/NetBSD tslog dump: stacks, flamechart, exports")
    p.add_argument("dump", nargs="?", help="the output of `sysctl -b debug.tslog`")
    p.add_argument("--user", metavar="FILE", help="`sysctl -b debug.tslog_user`, or a Linux process timeline from "
                   "`appliance export RESULTS --format tslog-user`: drawn as a userland track")
    p.add_argument("--tsc-hz", type=positive, required=True, help="TSC frequency in Hz (machdep.tsc_freq)")
    p.add_argument("--buffer-records", type=int, default=tslog.DEFAULT_BUFFER,
                   help="the kernel's tslog buffer size: a dump this long is reported as truncated")
    p.add_argument("--no-pre-record", action="store_true",
                   help="start time at the first record, not at TSC 0 (for VMs whose TSC does not start at reset)")
    p.add_argument("--all-warnings", action="store_true", help="print every repair and problem, not the first 20")
    p.add_argument("--top", type=int, default=15)
    add_outputs(p)
    p.set_defaults(func=cmd_tslog)
    p = verbs.add_parser("profile", help="sample the guest's instruction pointer through QEMU's gdbstub while it boots")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--interval-ms", type=positive, default=1.0, help="time between samples (default 1 ms; the "
                   "wall clock's gdbstub sampler)")
    p.add_argument("--every", type=int, default=100_000, help="with --clock instructions|virtual: a sample every this "
                   "many guest instructions (default %(default)s): the same profile on every run")
    p.add_argument("--diff", metavar="OTHER", help="a differential profile on the instruction clock: which functions "
                   "gained instructions from BUNDLE to OTHER (a bundle)")
    p.add_argument("--diff-symbols", metavar="MAP", help="OTHER's symbols, when its kernel is not BUNDLE's")
    p.add_argument("--symbols", help="System.map or `nm -CS vmlinux` output (default: the minimal kernel's)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--flamechart", metavar="FILE", help="write the samples in time order as an SVG flamechart")
    add_outputs(p)
    boot_options(p)
    p.set_defaults(func=cmd_profile)
    p = verbs.add_parser("redox", help="a Redox-style kernel profile (TSC IP [RET ...] samples) with nm -CS symbols")
    p.add_argument("samples", help="a Redox-style profile: lines `TSC IP [RET ...]` (hex)")
    p.add_argument("--nm", required=True, help="`nm -CS` output (or a System.map) of the kernel")
    p.add_argument("--ghz", type=positive, required=True, help="the CPU's TSC frequency in GHz")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--flamechart", metavar="FILE", help="write the samples in time order as an SVG flamechart")
    add_outputs(p)
    p.set_defaults(func=cmd_redox)
    p = verbs.add_parser("export", help="a results JSON's boot as svg, chrome, speedscope or collapsed")
    p.add_argument("results", help=options.RESULTS)
    p.add_argument("--format", choices=(*FORMATS, "tslog-user"), required=True)
    p.add_argument("-o", "--output", help="the file (default: beside RESULTS, named as the format's tools expect: "
                   + ", ".join(f"{k} {v}" for k, v in SUFFIXES.items()) + ")")
    p.set_defaults(func=cmd_export)
    p = verbs.add_parser("report", help="one self-contained HTML report of a results JSON")
    p.add_argument("results", help=options.RESULTS)
    p.add_argument("-o", "--output", default="report.html")
    p.add_argument("--trend-phase", default="to_init", help="the phase of the trend section (default to_init)")
    p.add_argument("--no-trend", action="store_true", help="no trend section from the results store")
    record_options(p, recording=False)
    p.set_defaults(func=cmd_report)

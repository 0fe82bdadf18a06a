"""The `appliance` command: build appliances, boot and measure them, say where the time goes.

Every failure ends in one `error:` line and a non-zero exit; --debug adds tracebacks.
The verbs and their defaults come from the parser itself (`appliance --help`).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from appliance import __version__, bundle, results
from appliance.boot import accel, hostfacts, hostload, measure
from appliance.boot.qemu import Channel
from appliance.build import apt, kernel, pkglock
from appliance.build.template import KERNEL_COMPRESSIONS
from appliance.cli import doctor, options, output
from appliance.cli import series as cli_series
from appliance.cli import tune as cli_tune
from appliance.cli import where as cli_where
from appliance.cli.options import positive
from appliance.cli.output import say
from appliance.errors import ApplianceError, BootError, Interrupted
from appliance.machines import Machine
from appliance.paths import ROOT
from appliance.phases import PHASE_NAMES
from appliance.proc import find_tool
from appliance.runs import bench, compare, table

DEMO_N = 6  # the smallest n with a 95% interval of the median from order statistics
EXAMPLES = f"""examples:
  appliance demo                          build the default appliance, boot it 1 + {DEMO_N} times, print phases
  appliance build minimal                 scons appliance TEMPLATE=minimal -> build/minimal/
  appliance build benchmark-minimal       the benchmark appliance on the minimal kernel (built once, cached)
  appliance run build/benchmark           boot once, streaming the console
  appliance bench build/benchmark -n 10   warm-up + 10 boots -> results JSON and a phase table
  appliance bench build/benchmark --channel exit    the NEMU method: one boot per probe
  appliance compare build/minimal build/benchmark -n 10   interleaved A/B with CIs and p-values
  appliance crosscheck build/benchmark --channels trace,exit -n 5
  appliance stats results.json            recompute and print the statistics of a results file
  appliance inspect build/disk            every file of the initrd with its size, modules first
  appliance analyze build/benchmark -n 5 --svg boot.svg   initcall_debug boots: timeline, top initcalls
  appliance tslog tslog.txt --tsc-hz 2.6e9 --svg tslog.svg   a FreeBSD/NetBSD boot flamechart
  appliance report results.json -o report.html            one self-contained HTML report
"""


NO_JSON = {"build"}  # verbs whose output is SCons' own


def _qemu() -> str:
    return find_tool("qemu-system-x86_64")


def cmd_build(args: argparse.Namespace) -> int:
    scons = shutil.which("scons") or str(Path(sys.executable).parent / "scons")
    argv = [scons, "-C", str(ROOT), "-Q", "appliance", f"TEMPLATE={args.template}"]
    if args.kernel:
        argv.append(f"KERNEL={Path(args.kernel).resolve()}")
    if getattr(args, "kernel_recipe", None):
        argv.append(f"KERNEL_RECIPE={args.kernel_recipe}")
    if getattr(args, "kernel_compression", None):
        argv.append(f"KERNEL_COMPRESSION={args.kernel_compression}")
    if getattr(args, "machine", None):
        argv.append(f"MACHINE={args.machine}")
    if getattr(args, "build_dir", None):
        argv.append(f"BUILD_DIR={Path(args.build_dir).resolve()}")
    if args.debug:
        argv.append("VERBOSE=1")
    if subprocess.run(argv, check=False).returncode != 0:
        raise ApplianceError(f"building template {args.template} failed (see the error above)")
    return 0


def _load(path: str, args: argparse.Namespace) -> bundle.Bundle:
    """The bundle to boot: a directory, a release .tar.zst (unpacked into a temporary
    directory, removed at exit) or an .iso (booted as a CD)."""
    from appliance.build import release

    if path.endswith((".iso", ".tar.zst")):
        workdir = Path(tempfile.mkdtemp(prefix="appliance-unpacked-"))
        atexit.register(shutil.rmtree, workdir, True)
        if path.endswith(".iso"):  # unpacked for its bundle.json and digests; booted as a CD
            return release.load_iso(Path(path), workdir)
        target = bundle.load(release.unpack_any(Path(path), workdir))
    else:
        target = bundle.load(Path(path))
    target = target.with_machine(Machine(args.machine)) if args.machine else target
    return target.with_run(cpu_model=args.cpu) if getattr(args, "cpu", None) else target


INTERACTIVE_LIMIT_S = 3600.0


def cmd_run(args: argparse.Namespace) -> int:
    target = _load(args.bundle, args)
    choice = _accel(args)
    if args.interactive:
        from appliance.boot import interactive

        limit = args.timeout if args.timeout is not None else INTERACTIVE_LIMIT_S
        return interactive.run(target, _qemu(), choice.accel, limit, args.append or "")
    args.timeout = args.timeout if args.timeout is not None else options.BOOT_TIMEOUT_S
    if args.serve:
        return _serve(target, choice.accel, args)
    channel = Channel(args.channel)
    if channel is Channel.EXIT:
        raise ApplianceError("`run` boots once; the exit channel needs a boot per probe: use `appliance bench --channel exit`")
    bench.check_channel(channel, choice)
    echo = sys.stderr if output.as_json() else sys.stdout  # stdout carries the JSON alone
    work = Path(tempfile.mkdtemp(prefix="appliance-run-"))
    try:
        run = measure.boot(target, _qemu(), choice.accel, args.timeout, echo=echo, channel=channel,
                           extra_cmdline=args.append or "", keep_disk_writes=args.keep_disk_writes, keep_dir=work)
    except BootError as exc:
        # the console was streamed already: no tail again, but the whole log is kept
        log = work / "console.log"
        if not log.is_file():
            shutil.rmtree(work, ignore_errors=True)
            raise
        raise BootError(f"{exc} (the whole console: {log})") from None
    shutil.rmtree(work, ignore_errors=True)
    width = max([9, *(len(name) for name, value in run.phases.items() if value is not None)])
    rows = [f"{name:<{width}} {'-' if value is None else f'{value:.1f} ms'}" for name, value in run.phases.items()]
    say("\n" + "\n".join(rows), phases_ms=run.phases, warnings=run.warnings)
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _serve(target: bundle.Bundle, accel_name: str, args: argparse.Namespace) -> int:
    started = time.monotonic()

    def announce(forwards: list[str]) -> None:
        what = f"ready after {(time.monotonic() - started) * 1e3:.0f} ms" if target.ready else "running"
        print(f"appliance: {what}; Ctrl-C powers the VM off", file=sys.stderr)
        for line in forwards:
            print(f"  forward {line}", file=sys.stderr)

    measure.serve(target, _qemu(), accel_name, args.timeout, sys.stdout, announce)
    print("appliance: the VM powered off", file=sys.stderr)
    return 0


def _warn_accel(choice: accel.AccelChoice) -> None:
    if choice.reason.startswith("KVM unusable"):
        print(f"warning: using TCG: {choice.reason}", file=sys.stderr)


def _plan(args: argparse.Namespace) -> bench.Plan:
    if args.n < 1 or args.warmup < 0:
        raise ApplianceError("-n must be at least 1 and --warmup at least 0")
    return bench.Plan(Channel(args.channel), args.n, args.warmup, args.timeout, args.keep_going,
                      extra_cmdline=args.append or "")


def _accel(args: argparse.Namespace) -> accel.AccelChoice:
    choice = accel.choose(args.accel, _qemu())
    _warn_accel(choice)
    return choice


def _bench(bundle_path: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    target = _load(str(bundle_path), args)
    choice, plan = _accel(args), _plan(args)
    print(f"benchmarking {bundle_path} ({target.machine.value}, {choice.accel}, channel {plan.channel.value}): "
          f"{plan.warmup} warm-up + {plan.n} boots", file=sys.stderr)
    doc = bench.bench(target, qemu_path=_qemu(), accel=choice, plan=plan, out=out)
    _print_results(doc)
    say(f"results: {out}", results=str(out))
    return doc


def _print_results(doc: dict[str, Any]) -> None:
    say(table.phase_table(doc["summary"]), summary=doc["summary"], failed_runs=doc["failed_runs"],
        failures=doc.get("failures", {}), disturbed_runs=doc.get("disturbed_runs", 0))
    for reason, count in doc.get("failures", {}).items():
        print(f"{count} boot(s) failed: {reason}", file=sys.stderr)
    _warn_busy(doc["runs"])


def _warn_busy(runs: list[dict[str, Any]]) -> None:
    line = hostload.warning(runs)
    if line:
        print(f"warning: {line}", file=sys.stderr)


def _output(args: argparse.Namespace, name: str) -> Path:
    """A results file's path, checked before any boot: a run's results are never lost
    to an output that cannot be written. A failure or interrupt later names it."""
    path = Path(name)
    args.results_path = path
    if path.is_dir():
        raise ApplianceError(f"output {path} is a directory: give a file name, e.g. {path / 'results.json'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ApplianceError(f"output {path}: directory {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK):
        raise ApplianceError(f"output {path}: directory {parent} is not writable: choose another place")
    return path


def cmd_bench(args: argparse.Namespace) -> int:
    out = _output(args, args.output or f"results-{Path(args.bundle).resolve().name}.json")
    doc = _bench(Path(args.bundle), args, out)
    return 1 if doc["failed_runs"] else 0


def cmd_stats(args: argparse.Namespace) -> int:
    doc = results.read(Path(args.results))
    sides = results.labelled_sides(doc)
    for label, side in sides.items():
        if label:
            say(f"{label}: {side['bundle']['path']}")
        if not side.get("complete", False):
            print("note: this results file is partial (the run set was interrupted)", file=sys.stderr)
        summary = results.summary(side["runs"])
        say(table.phase_table(summary), summaries={label or "runs": summary})
    if "comparison" in doc:
        kept = doc["comparison"]
        again = compare.compare(doc["a"]["runs"], doc["b"]["runs"], kept["confidence"],
                                kept.get("primary") or compare.PRIMARY, kept.get("looks", 1))
        say(compare.comparison_table(again), comparison=again)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Boot A and B interleaved (A B A B ...) and compare them phase by phase; with
    --max-n, boot on until the primary phase is decided."""
    choice, plan = _accel(args), _plan(args)
    if args.primary not in PHASE_NAMES:
        raise ApplianceError(f"--primary {args.primary!r} is not a phase: one of {', '.join(PHASE_NAMES)}")
    max_n = args.max_n or plan.n
    if max_n < plan.n or plan.n < 3:
        raise ApplianceError("compare needs -n of at least 3, and --max-n no smaller than -n")
    looks = compare.looks_for(plan.n, max_n)
    qemu = _qemu()
    host = hostfacts.collect(qemu)
    b_words = " ".join(filter(None, (plan.extra_cmdline, args.append_b)))
    plans = (replace(plan, n=max_n), replace(plan, n=max_n, extra_cmdline=b_words))
    sessions = [bench.Session(_load(p, args), qemu, choice, side) for p, side in zip((args.a, args.b), plans, strict=True)]
    out = _output(args, args.output or "compare.json")
    state: dict[str, Any] = {"reason": None}

    def stop(rounds: int) -> bool:
        if len(looks) == 1:
            return False
        state["reason"] = compare.decided(compare.compare(sessions[0].runs, sessions[1].runs, args.confidence,
                                                          args.primary, len(looks)))
        return state["reason"] is not None

    complete = False
    ran = 0
    try:
        ran = bench.interleave(sessions, plan.warmup, max_n, looks=looks, stop=stop)
        complete = True
    finally:
        a, b = (s.document(complete, host) for s in sessions)
        result = compare.compare(a["runs"], b["runs"], args.confidence, args.primary, len(looks))
        if len(looks) > 1:
            result["sequential"] = {"looks": looks, "stopped_after": ran, "reason": state["reason"]}
        results.write(out, {"format": results.FORMAT, "complete": complete, "order": "ABAB", "a": a, "b": b,
                            "comparison": result})
    say(f"A: {args.a}\nB: {args.b}{f' + {args.append_b!r}' if args.append_b else ''}",
        a=args.a, b=args.b, append_b=args.append_b)
    if len(looks) > 1:
        say(f"sequential: {ran} boots per side of at most {max_n}: {state['reason'] or 'not decided'}")
    say(compare.comparison_table(result), comparison=result)
    _warn_busy(a["runs"] + b["runs"])
    say(f"results: {out}", results=str(out))
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """Measure one bundle through several channels, interleaved, and report disagreement."""
    choice, plan = _accel(args), _plan(args)
    qemu = _qemu()
    target = _load(args.bundle, args)
    channels = [Channel(c) for c in args.channels.split(",")]
    if len(channels) < 2:
        raise ApplianceError("--channels needs at least two channels, e.g. trace,exit")
    # Exit boots are traced too, so the two channels can also be compared within one boot.
    sessions = {c.value: bench.Session(target, qemu, choice, bench.Plan(c, plan.n, plan.warmup, plan.timeout,
                                                                         plan.keep_going, c is Channel.EXIT))
                for c in channels}
    host = hostfacts.collect(qemu)
    out = _output(args, args.output or "crosscheck.json")
    complete = False
    try:
        bench.interleave(list(sessions.values()), plan.warmup, plan.n)
        complete = True
    finally:
        docs = {name: s.document(complete, host) for name, s in sessions.items()}
        check = compare.crosscheck({name: d["summary"] for name, d in docs.items()})
        if "exit" in docs:
            check["paired_exit_trace"] = compare.paired_disagreement(docs["exit"]["runs"])
        results.write(out, {"format": results.FORMAT, "complete": complete, "channels": docs, "crosscheck": check})
    say(compare.crosscheck_table(check), crosscheck=check)
    if "paired_exit_trace" in check:
        say(compare.paired_table(check["paired_exit_trace"]))
    say(f"results: {out}", results=str(out))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    build = argparse.Namespace(template="benchmark", kernel=None, kernel_recipe=None, kernel_compression=None,
                               machine=None, build_dir=None, debug=args.debug)  # --machine applies at boot
    cmd_build(build)
    (ROOT / "build" / "results").mkdir(parents=True, exist_ok=True)
    out = _output(args, str(ROOT / "build" / "results" / "benchmark.json"))
    _bench(ROOT / "build" / "benchmark", args, out)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from appliance.build import inspect, release

    with tempfile.TemporaryDirectory(prefix="appliance-inspect-") as tmp:
        info = inspect.report(bundle.load(release.unpack_any(Path(args.bundle), Path(tmp))))
    info["bundle"] = args.bundle  # not the temporary directory it was unpacked into
    say(inspect.text(info), **info)
    return 0


def cmd_dts(args: argparse.Namespace) -> int:
    """The bundle's device tree as DTS source (aarch64 bundles)."""
    from appliance.build import devicetree, release

    with tempfile.TemporaryDirectory(prefix="appliance-dts-") as tmp:
        target = bundle.load(release.unpack_any(Path(args.bundle), Path(tmp)))
        if target.dtb is None:
            raise ApplianceError(f"bundle {args.bundle} has no device tree ({target.arch.value} {target.machine.value}: "
                                 "only aarch64 bundles carry board.dtb)")
        source = devicetree.to_dts(devicetree.parse(target.dtb.read_bytes()))
    say(source.rstrip("\n"), dts=source)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from appliance.build import release

    artifact = Path(args.artifact)
    problems = release.verify(artifact)
    if artifact.is_file() and (artifact.parent / "SHA256SUMS").is_file():
        problems += [f"SHA256SUMS: {p}" for p in release.verify_sums(artifact.parent)]
    for problem in problems:
        print(f"{artifact}: {problem}", file=sys.stderr)
    if problems:
        raise ApplianceError(f"{artifact} failed verification ({len(problems)} problem(s)): rebuild or fetch it again")
    say(f"{artifact}: ok (every file matches bundle.json)", artifact=str(artifact), ok=True)
    return 0


def cmd_kernel_lock(args: argparse.Namespace) -> int:
    lock_path = ROOT / "recipes" / "kernel" / "debian.lock"
    newest = kernel.newest_available()
    kernel.write_lock(lock_path, newest)
    say(f"pinned {newest.package}={newest.version} in {lock_path}", package=newest.package, version=newest.version,
        lock=str(lock_path))
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Resolve a template's [packages] debian with apt again and rewrite its lock file."""
    from appliance.build import packages, recipes
    from appliance.build.template import find_template, load_template

    template = load_template(find_template(args.template, recipes.TEMPLATES), recipes.available_programs())
    if not template.debian:
        raise ApplianceError(f"template {template.name} has no [packages] debian: there is nothing to lock")
    old = packages.lock_file(template)
    previous = pkglock.read(old)
    before = {p.name: p.version for p in (previous.pins if previous else ())}
    lock = packages.relock(template, apt.Apt())
    changed = [f"{p.name} {before.get(p.name, 'new')} -> {p.version}" for p in lock.pins if before.get(p.name) != p.version]
    say(f"pinned {len(lock.pins)} packages in {old}" + (": " + ", ".join(changed) if changed else " (no change)"),
        lock=str(old), packages={p.name: p.version for p in lock.pins}, changed=changed)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """What the cache holds, part by part; --clean removes what no lock or template uses."""
    from appliance.build import cache, recipes

    root = kernel.cache_dir()
    found = cache.entries(root, recipes.cache_in_use())
    removed = cache.clean(root, found, everything=args.all) if args.clean or args.all else []
    lines = [f"cache {root}:"]
    for part in sorted({e.part for e in found}):
        mine = [e for e in found if e.part == part]
        lines.append(f"  {part:<11} {sum(e.bytes for e in mine) / 2**20:8.1f} MiB  {cache.PARTS.get(part, '')}")
        lines += [f"    {'removed' if e in removed else 'in use ' if e.in_use else 'unused '} "
                  f"{e.bytes / 2**20:8.1f} MiB  {e.path.name}" for e in mine]
    freed = sum(e.bytes for e in removed)
    lines.append(f"total {sum(e.bytes for e in found) / 2**20:.1f} MiB" +
                 (f", removed {len(removed)} entries ({freed / 2**20:.1f} MiB)" if removed else
                  "; `appliance cache --clean` removes the unused entries, --all everything"))
    say("\n".join(lines), cache=str(root), removed_bytes=freed,
        entries=[{"part": e.part, "name": e.path.name, "bytes": e.bytes, "in_use": e.in_use,
                  "removed": e in removed} for e in found])
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    found = doctor.checks()
    say("\n".join(f"[{status}] {line}" for status, line in found),
        checks=[{"status": status, "line": line} for status, line in found])
    return 1 if any(status == doctor.FAIL for status, _ in found) else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="appliance", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"appliance {__version__}")
    top.add_argument("-v", "--debug", action="store_true", help="log commands and show tracebacks")
    verbs = top.add_subparsers(dest="verb", required=True)

    def boot_options(p: argparse.ArgumentParser, timeout: float | None = options.BOOT_TIMEOUT_S) -> None:
        p.set_defaults(boots=True)  # an interrupt stops QEMU: say so
        p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                       help="auto: KVM if it really runs a guest, else TCG with a warning")
        p.add_argument("--timeout", type=positive, default=timeout,
                       help=f"seconds per boot before it counts as hung (default {options.BOOT_TIMEOUT_S:.0f})")
        p.add_argument("--append", metavar="WORDS", help="kernel command-line words added to every boot "
                       "(the bundle is not changed; e.g. --append initcall_debug)")
        p.add_argument("--channel", choices=[c.value for c in Channel], default="trace",
                       help="how probe times reach the host (default trace)")
        p.add_argument("--machine", choices=[m.value for m in Machine],
                       help="boot as this machine profile instead of the bundle's")
        p.add_argument("--cpu", metavar="MODEL", help="QEMU's -cpu model (default: max under TCG, host under KVM)")

    def bench_options(p: argparse.ArgumentParser) -> None:
        boot_options(p)
        p.add_argument("-n", type=int, default=10, help="counted boots (default %(default)s)")
        p.add_argument("--warmup", type=int, default=1, help="boots run first and not counted (default %(default)s)")
        p.add_argument("--keep-going", action="store_true", help="go on after a failed boot")

    p = verbs.add_parser("build", help="build a template's bundle with SCons")
    p.add_argument("template", nargs="?", default="benchmark",
                   help="a name in rootfs_templates/ or a path to a .toml file (default benchmark)")
    p.add_argument("--machine", choices=[m.value for m in Machine],
                   help="a variant for this machine profile, built into build/<template>+<machine>/")
    p.add_argument("--build-dir", help="where outputs go instead of the checkout's build/")
    p.add_argument("--kernel", help="your own bzImage")
    p.add_argument("--kernel-recipe", choices=("debian", "minimal"), help="the template's kernel instead")
    p.add_argument("--kernel-compression", choices=KERNEL_COMPRESSIONS, help="the minimal kernel's image compression")
    p.set_defaults(func=cmd_build)
    p = verbs.add_parser("run", help="boot a bundle once, streaming its console")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--serve", action="store_true",
                   help="keep a [network] appliance running, its forwards printed once its service answers, "
                        "until Ctrl-C (which powers it off); --timeout is the wait for the first answer")
    p.add_argument("--keep-disk-writes", action="store_true",
                   help="let the guest change the bundle's disk images (their digests then no longer match)")
    p.add_argument("--interactive", action="store_true",
                   help="connect this terminal to the guest's console (Ctrl-] leaves; no measurement; "
                        "--timeout defaults to an hour here)")
    boot_options(p, timeout=None)  # None: the boot's limit, or the interactive session's
    p.set_defaults(func=cmd_run)
    p = verbs.add_parser("bench", help="boot a bundle many times and time its phases")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("-o", "--output", help="results JSON (default results-<bundle>.json)")
    bench_options(p)
    p.set_defaults(func=cmd_bench)
    p = verbs.add_parser("compare", help="boot two bundles interleaved and compare their phases")
    p.add_argument("a", help=f"side A: {options.BUNDLE}")
    p.add_argument("b", help="side B: the same kinds (or A again, with --append-b)")
    p.add_argument("-o", "--output", help="results JSON (default compare.json)")
    p.add_argument("--confidence", type=float, default=0.95, help="family-wise confidence (default 0.95)")
    p.add_argument("--primary", default=compare.PRIMARY,
                   help=f"the phase the question is about, tested at the full level (default {compare.PRIMARY})")
    p.add_argument("--max-n", type=int,
                   help="sequential: look every N boots and stop once the primary phase is decided, at most MAX_N")
    p.add_argument("--append-b", metavar="WORDS", help="kernel command-line words added to B's boots only "
                   "(compare a bundle with itself plus a knob)")
    bench_options(p)
    p.set_defaults(func=cmd_compare)
    p = verbs.add_parser("crosscheck", help="measure one bundle through several channels and compare them")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--channels", default="trace,exit", help="comma-separated, the first is the reference")
    p.add_argument("-o", "--output", help="results JSON (default crosscheck.json)")
    bench_options(p)
    p.set_defaults(func=cmd_crosscheck, n=5)
    p = verbs.add_parser("stats", help="recompute statistics from a results JSON")
    p.add_argument("results", help=options.RESULTS)
    p.set_defaults(func=cmd_stats)
    p = verbs.add_parser("demo", help="build the default appliance, bench it, print the phases")
    bench_options(p)
    p.set_defaults(func=cmd_demo, n=DEMO_N)
    p = verbs.add_parser("inspect", help="what a bundle, .tar.zst or .iso holds: files, sizes, kernel, modules")
    p.add_argument("bundle", help=options.BUNDLE)
    p.set_defaults(func=cmd_inspect)
    p = verbs.add_parser("dts", help="an aarch64 bundle's device tree (board.dtb) as DTS source")
    p.add_argument("bundle", help=options.BUNDLE)
    p.set_defaults(func=cmd_dts)
    p = verbs.add_parser("verify", help="check a bundle, .tar.zst or .iso against its digests (and SHA256SUMS)")
    p.add_argument("artifact", help=options.BUNDLE)
    p.set_defaults(func=cmd_verify)
    p = verbs.add_parser("doctor", help="check the tools and KVM this machine has")
    p.set_defaults(func=cmd_doctor)
    p = verbs.add_parser("cache", help="the download and build cache by part, and cleaning it (like mkosi clean)")
    p.add_argument("--clean", action="store_true", help="remove what no current lock or template refers to")
    p.add_argument("--all", action="store_true", help="remove everything (it is fetched and built again when needed)")
    p.set_defaults(func=cmd_cache)
    p = verbs.add_parser("lock", help="resolve a template's Debian packages with apt again and rewrite <template>.lock")
    p.add_argument("template", help="a name in rootfs_templates/ or a path to a .toml file")
    p.set_defaults(func=cmd_lock)
    p = verbs.add_parser("kernel-lock", help="pin the newest Debian 6.1 kernel in recipes/kernel/debian.lock")
    p.set_defaults(func=cmd_kernel_lock)
    cli_where.register(verbs, boot_options, _load, _accel, _qemu)
    cli_tune.register(verbs, bench_options, _load, _accel, _qemu, _output, _plan, options.BUNDLE)
    cli_series.register(verbs, bench_options, _load, _accel, _qemu, _output, _plan, options.BUNDLE)
    for name, sub in verbs.choices.items():
        if name not in NO_JSON:
            sub.add_argument("--json", action="store_true", help="print the result as one JSON document on stdout")
    return top


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)  # SIGTERM unwinds like Ctrl-C: QEMU killed, partial results kept
    output.start(getattr(args, "json", False))
    started_ns = time.time_ns()
    try:
        code = int(args.func(args))
        output.finish()
        return code
    except KeyboardInterrupt:
        what = "QEMU stopped" if getattr(args, "boots", False) else f"{args.verb} stopped before it wrote anything"
        error: ApplianceError = Interrupted(f"interrupted: {what}")
    except ApplianceError as exc:
        error = exc
    partial = getattr(args, "results_path", None)
    if partial is not None and partial.is_file() and partial.stat().st_mtime_ns >= started_ns:  # written by this run
        error.args = (f"{error}; the partial results (marked incomplete) are in {partial}",)
    if args.debug:
        logging.exception("failure")
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, BootError) and error.console_tail:
        print("console tail:\n" + error.console_tail, file=sys.stderr)
    return error.exit_code


def entry() -> NoReturn:
    try:
        sys.exit(main())
    except BrokenPipeError:  # `appliance ... | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    entry()

"""The `appliance` command: build, run, bench, stats, doctor, kernel-lock, demo.

Every failure ends in one `error:` line and a non-zero exit; --debug adds tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, accel, bench, bundle, kernel, measure, results, table
from .errors import ApplianceError, BootError, Interrupted
from .proc import find_tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = """examples:
  appliance demo                          build the default appliance, boot it 5 times, print phases
  appliance build minimal                 scons appliance TEMPLATE=minimal -> build/minimal/
  appliance run build/benchmark           boot once, streaming the console
  appliance bench build/benchmark -n 10   warm-up + 10 boots -> results JSON and a phase table
  appliance stats results.json            recompute and print the statistics of a results file
"""


def _qemu() -> str:
    return find_tool("qemu-system-x86_64")


def cmd_build(args: argparse.Namespace) -> int:
    scons = shutil.which("scons") or str(Path(sys.executable).parent / "scons")
    argv = [scons, "-C", str(ROOT), "-Q", "appliance", f"TEMPLATE={args.template}"]
    if args.kernel:
        argv.append(f"KERNEL={Path(args.kernel).resolve()}")
    if subprocess.run(argv, check=False).returncode != 0:
        raise ApplianceError(f"building template {args.template} failed (see the error above)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    target = bundle.load(Path(args.bundle))
    choice = accel.choose(args.accel, _qemu())
    _warn_accel(choice)
    run = measure.boot(target, _qemu(), choice.accel, args.timeout, echo=sys.stdout)
    print()
    for name, value in run.phases.items():
        print(f"{name:<9} {'-' if value is None else f'{value:.1f} ms'}")
    return 0


def _warn_accel(choice: accel.AccelChoice) -> None:
    if choice.reason.startswith("KVM unusable"):
        print(f"warning: using TCG: {choice.reason}", file=sys.stderr)


def _bench(bundle_path: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    target = bundle.load(bundle_path)
    choice = accel.choose(args.accel, _qemu())
    _warn_accel(choice)
    print(f"benchmarking {bundle_path} ({target.machine.value}, {choice.accel}): "
          f"{args.warmup} warm-up + {args.n} boots", file=sys.stderr)
    doc = bench.bench(target, qemu_path=_qemu(), accel=choice, n=args.n, warmup=args.warmup,
                      timeout=args.timeout, keep_going=args.keep_going, out=out)
    print(table.phase_table(doc["summary"]))
    if doc["failed_runs"]:
        print(f"{doc['failed_runs']} boot(s) failed; see 'runs' in {out}", file=sys.stderr)
    print(f"results: {out}")
    return doc


def cmd_bench(args: argparse.Namespace) -> int:
    out = Path(args.output or f"results-{Path(args.bundle).resolve().name}.json")
    doc = _bench(Path(args.bundle), args, out)
    return 1 if doc["failed_runs"] else 0


def cmd_stats(args: argparse.Namespace) -> int:
    doc = results.read(Path(args.results))
    fresh = results.summary(doc["runs"])
    if not doc.get("complete", False):
        print("note: this results file is partial (the run set was interrupted)", file=sys.stderr)
    print(table.phase_table(fresh))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    args.template, args.kernel = "benchmark", None
    cmd_build(args)
    out = ROOT / "build" / "results" / "benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    _bench(ROOT / "build" / "benchmark", args, out)
    return 0


def cmd_kernel_lock(args: argparse.Namespace) -> int:
    lock_path = ROOT / "recipes" / "kernel" / "debian.lock"
    newest = kernel.newest_available()
    kernel.write_lock(lock_path, newest)
    print(f"pinned {newest.package}={newest.version} in {lock_path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    checks: list[tuple[bool, str]] = []
    for tool in ("qemu-system-x86_64", "diet", "gcc", "strip", "apt-get", "dpkg-deb"):
        try:
            checks.append((True, f"{tool}: {find_tool(tool)}"))
        except ApplianceError as exc:
            checks.append((False, str(exc)))
    qemu = shutil.which("qemu-system-x86_64")
    if qemu:
        events = subprocess.run([qemu, "-trace", "help"], capture_output=True, text=True, check=False).stdout
        checks.append(("memory_region_ops_write" in events,
                       "QEMU trace event memory_region_ops_write available" if "memory_region_ops_write" in events
                       else "QEMU lacks the memory_region_ops_write trace event: install Debian's qemu-system-x86"))
        works, why = accel.kvm_works(qemu)
        checks.append((True, f"KVM {'usable' if works else 'not usable (TCG will be used)'}: {why}"))
    for ok, line in checks:
        print(f"[{'ok' if ok else 'FAIL'}] {line}")
    return 0 if all(ok for ok, _ in checks) else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="appliance", description=__doc__, epilog=EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"appliance {__version__}")
    top.add_argument("-v", "--debug", action="store_true", help="log commands and show tracebacks")
    verbs = top.add_subparsers(dest="verb", required=True)

    def boot_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                       help="auto: KVM if it really runs a guest, else TCG with a warning")
        p.add_argument("--timeout", type=float, default=120.0, help="seconds per boot before it counts as hung")

    def bench_options(p: argparse.ArgumentParser) -> None:
        boot_options(p)
        p.add_argument("-n", type=int, default=10, help="counted boots (default 10)")
        p.add_argument("--warmup", type=int, default=1, help="boots run first and not counted (default 1)")
        p.add_argument("--keep-going", action="store_true", help="go on after a failed boot")

    p = verbs.add_parser("build", help="build a template's bundle with SCons")
    p.add_argument("template", nargs="?", default="benchmark")
    p.add_argument("--kernel", help="your own bzImage")
    p.set_defaults(func=cmd_build)
    p = verbs.add_parser("run", help="boot a bundle once, streaming its console")
    p.add_argument("bundle")
    boot_options(p)
    p.set_defaults(func=cmd_run)
    p = verbs.add_parser("bench", help="boot a bundle many times and time its phases")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", help="results JSON (default results-<bundle>.json)")
    bench_options(p)
    p.set_defaults(func=cmd_bench)
    p = verbs.add_parser("stats", help="recompute statistics from a results JSON")
    p.add_argument("results")
    p.set_defaults(func=cmd_stats)
    p = verbs.add_parser("demo", help="build the default appliance, bench it, print the phases")
    bench_options(p)
    p.set_defaults(func=cmd_demo, n=6)  # the smallest n with a 95% CI of the median
    p = verbs.add_parser("doctor", help="check the tools and KVM this machine has")
    p.set_defaults(func=cmd_doctor)
    p = verbs.add_parser("kernel-lock", help="pin the newest Debian 6.1 kernel in recipes/kernel/debian.lock")
    p.set_defaults(func=cmd_kernel_lock)
    return top


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)  # SIGTERM unwinds like Ctrl-C: QEMU killed, partial results kept
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        error: ApplianceError = Interrupted("interrupted: QEMU stopped, partial results (if any) marked incomplete")
    except ApplianceError as exc:
        error = exc
    if args.debug:
        logging.exception("failure")
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, BootError) and error.console_tail:
        print("console tail:\n" + error.console_tail, file=sys.stderr)
    return error.exit_code


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry()

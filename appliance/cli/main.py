"""The `appliance` command: build appliances, boot and measure them, say where the time goes.

Every failure ends in one `error:` line and a non-zero exit; --debug adds tracebacks.
The verbs and their defaults come from the parser itself (`appliance --help`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from appliance import __version__, bundle, fsutil, proc, results
from appliance.assemble import apt, kernelfetch, pkglock
from appliance.assemble.template import KERNEL_COMPRESSIONS, Kernel
from appliance.boot import hostfacts, hostload, measure
from appliance.boot.qemu import BootSpec, Channel
from appliance.cli import analysis_verbs, bisect, doctor, gate, history, options, output
from appliance.cli import fleet as cli_fleet
from appliance.cli import series as cli_series
from appliance.cli import tune as cli_tune
from appliance.cli.options import (
    bench_options,
    boot_options,
    choose_accel,
    load_bundle,
    output_path,
    plan_of,
    record_results,
    snapshot_of,
    store_for,
)
from appliance.cli.output import say
from appliance.errors import ApplianceError, BootError, Interrupted
from appliance.fsutil import atomic_write
from appliance.machines import Accel, Machine
from appliance.paths import ROOT
from appliance.phases import PHASE_NAMES, in_instructions, payload_probe
from appliance.results import RunRecord, RunSet
from appliance.runs import ab, bench, compare, table

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
  appliance history --template benchmark --phase kernel    the recorded run sets over time, steps found
  appliance gate results.json --junit gate.xml            a regression? exit 0 pass, 1 fail, 4 undecided
  appliance bisect --repo . --good A --bad B --build-cmd 'make-bundle {{commit}} {{out}}'
  appliance snapshot build/web --at service_ready         then: appliance run build/web --restore ...
"""


NO_JSON = {"build", "sbom"}  # verbs whose output is SCons' own, or JSON already


def build_dir() -> Path:
    """Where builds go: BUILD_DIR from the environment (relative to the checkout, as
    SConstruct reads it), else the checkout's build/."""
    given = Path(os.environ.get("BUILD_DIR") or "build")
    return given if given.is_absolute() else ROOT / given


@dataclass(frozen=True)
class BuildRequest:
    """What `appliance build` asks SCons for (the demo asks for the default appliance)."""

    template: str = "benchmark"
    kernel: str | None = None  # a bzImage of the user's
    kernel_recipe: str | None = None
    kernel_compression: str | None = None
    machine: str | None = None
    build_dir: str | None = None
    debug: bool = False

    def argv(self) -> list[str]:
        words = {"KERNEL": self.kernel and str(Path(self.kernel).resolve()), "KERNEL_RECIPE": self.kernel_recipe,
                 "KERNEL_COMPRESSION": self.kernel_compression, "MACHINE": self.machine,
                 "BUILD_DIR": self.build_dir and str(Path(self.build_dir).resolve()),
                 "VERBOSE": "1" if self.debug else None}
        scons = shutil.which("scons") or str(Path(sys.executable).parent / "scons")
        return [scons, "-C", str(ROOT), "-Q", "appliance", f"TEMPLATE={self.template}",
                *(f"{key}={value}" for key, value in words.items() if value)]


def build(request: BuildRequest) -> None:
    if proc.run(request.argv(), check=False, capture=False).returncode != 0:
        raise ApplianceError(f"building template {request.template} failed (see the error above)")


def cmd_build(args: argparse.Namespace) -> int:
    build(BuildRequest(args.template, args.kernel, args.kernel_recipe, args.kernel_compression, args.machine,
                       args.build_dir, args.debug))
    return 0


INTERACTIVE_LIMIT_S = 3600.0


def cmd_run(args: argparse.Namespace) -> int:
    target = load_bundle(args.bundle, args)
    choice = choose_accel(args)
    if args.interactive:
        from appliance.boot import interactive

        limit = args.timeout if args.timeout is not None else INTERACTIVE_LIMIT_S
        if args.restore:
            raise ApplianceError("--interactive boots the bundle: a restore is measured with run, bench or compare")
        return interactive.run(BootSpec(target, choice.accel, limit, extra_cmdline=args.append or ""), limit)
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
        spec = BootSpec(target, choice.accel, args.timeout, channel, args.append or "", args.keep_disk_writes,
                        restore=snapshot_of(args.restore), clock=options.clock_of(args))
        run = measure.boot(spec, echo=echo, keep_dir=work)
    except BootError as exc:
        # the console was streamed already: no tail again, but the whole log is kept
        log = work / "console.log"
        if not log.is_file():
            shutil.rmtree(work, ignore_errors=True)
            raise
        raise BootError(f"{exc} (the whole console: {log})") from None
    shutil.rmtree(work, ignore_errors=True)
    width = max([9, *(len(name) for name, value in run.phases.items() if value is not None)])
    start = run.events[0].host_time_ns if run.events else 0
    insns = in_instructions({e.name for e in run.events}, run.instructions) if run.instructions else {}
    rows = [f"{name:<{width}} {'-' if value is None else f'{value:.1f} ms':>12}"
            + (f"  {count / 1e6:12.3f} M instructions" if (count := insns.get(name)) is not None else "")
            for name, value in run.phases.items()]
    own = {e.name: (e.host_time_ns - start) / 1e6 for e in run.events if payload_probe(e.name)}
    rows += [f"payload probe {name}: {ms:.1f} ms from launch" for name, ms in own.items()]
    say("\n" + "\n".join(rows), phases_ms=run.phases, payload_probes_ms=own, warnings=run.warnings,
        **({"phases_insn": insns, "instructions": run.instructions} if insns else {}))
    for warning in run.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _serve(target: bundle.Bundle, accel_name: Accel, args: argparse.Namespace) -> int:
    started = time.monotonic()

    def announce(forwards: list[str]) -> None:
        what = f"ready after {(time.monotonic() - started) * 1e3:.0f} ms" if target.ready else "running"
        print(f"appliance: {what}; Ctrl-C powers the VM off", file=sys.stderr)
        for line in forwards:
            print(f"  forward {line}", file=sys.stderr)

    measure.serve(BootSpec(target, accel_name, args.timeout, extra_cmdline=args.append or "",
                           restore=snapshot_of(args.restore)), sys.stdout, announce)
    print("appliance: the VM powered off", file=sys.stderr)
    return 0


def _bench(bundle_path: Path, args: argparse.Namespace, out: Path) -> RunSet:
    plan = plan_of(args)  # a wrong count is one line before anything is loaded or probed
    target = load_bundle(str(bundle_path), args)
    store = store_for(args)
    choice = choose_accel(args)
    print(f"benchmarking {bundle_path} ({target.machine.value}, {choice.accel}, channel {plan.channel.value}): "
          f"{plan.warmup} warm-up + {plan.n} boots", file=sys.stderr)
    doc = bench.bench(target, accel=choice, plan=plan, out=out, resumed=getattr(args, "resume", False))
    _print_results(doc)
    say(f"results: {out}", results=str(out))
    record_results(args, store, doc, str(out.resolve()))
    return doc


def _print_results(doc: RunSet) -> None:
    say(table.phase_table(doc["summary"]), summary=doc["summary"], failed_runs=doc["failed_runs"],
        failures=doc.get("failures", {}), disturbed_runs=doc.get("disturbed_runs", 0))
    for reason, count in doc.get("failures", {}).items():
        print(f"{count} boot(s) failed: {reason}", file=sys.stderr)
    _warn_busy(doc["runs"])


def _warn_busy(runs: list[RunRecord]) -> None:
    line = hostload.warning(runs)
    if line:
        print(f"warning: {line}", file=sys.stderr)


def cmd_bench(args: argparse.Namespace) -> int:
    out = output_path(args.output or f"results-{Path(args.bundle).resolve().name}.json")
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
        runs, differed = results.recomputed(side)  # from the raw events, not the stored phases
        if differed:
            print(f"note: {differed} run(s){f' of {label}' if label else ''} stored phases that differ from their "
                  "events (written by another version?): the table is from the events", file=sys.stderr)
        summary = results.summary(runs)
        say(table.phase_table(summary), summaries={label or "runs": summary})
    if results.kind(doc) == "compare":
        kept = doc["comparison"]
        again = compare.compare(doc["a"]["runs"], doc["b"]["runs"], confidence=kept["confidence"],
                                primary=kept.get("primary") or compare.PRIMARY, looks=kept.get("looks", 1))
        say(compare.comparison_table(again), comparison=again)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Boot A and B interleaved (a random, balanced order per round) and compare them phase by phase; with
    --max-n, boot on until the primary phase is decided."""
    choice, plan = choose_accel(args), plan_of(args)
    if args.primary not in PHASE_NAMES:
        raise ApplianceError(f"--primary {args.primary!r} is not a phase: one of {', '.join(PHASE_NAMES)}")
    max_n = args.max_n or plan.n
    least = 2 if plan.clock.counts else 3  # a count's range needs two boots; the rank test three
    if max_n < plan.n or plan.n < least:
        raise ApplianceError(f"compare needs -n of at least {least} on the {plan.clock} clock, and --max-n no "
                             "smaller than -n")
    question = ab.Question(args.confidence, args.primary, max_n, args.append_b or "", snapshot_of(args.restore_b))
    if not plan.clock.counts and (
            note := compare.reach_note(max_n, (1 - args.confidence) / len(compare.looks_for(plan.n, max_n)))):
        print(note, file=sys.stderr)
    a, b = load_bundle(args.a, args), load_bundle(args.b, args)
    out = output_path(args.output or "compare.json")
    store = store_for(args)
    doc = ab.compare_bundles(a, b, choice, plan, question=question, out=out, resumed=args.resume)
    result = doc["comparison"]
    say(f"A: {args.a}\nB: {args.b}{f' + {args.append_b!r}' if args.append_b else ''}",
        a=args.a, b=args.b, append_b=args.append_b)
    sequential = result.get("sequential")
    if sequential:
        say(f"sequential: {sequential['stopped_after']} boots per side of at most {max_n}: "
            f"{sequential['reason'] or 'not decided'}")
    say(compare.comparison_table(result), comparison=result)
    _warn_busy(doc["a"]["runs"] + doc["b"]["runs"])
    say(f"results: {out}", results=str(out))
    record_results(args, store, doc, str(out.resolve()))
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """Measure one bundle through several channels, interleaved, and report disagreement."""
    choice, plan = choose_accel(args), plan_of(args)
    target = load_bundle(args.bundle, args)
    channels = [Channel(c) for c in args.channels.split(",")]
    if len(channels) < 2:
        raise ApplianceError("--channels needs at least two channels, e.g. trace,exit")
    out = output_path(args.output or "crosscheck.json")
    store = store_for(args)
    doc = ab.crosscheck_channels(target, choice, plan, channels, out)
    check = doc["crosscheck"]
    say(compare.crosscheck_table(check), crosscheck=check)
    if "paired_exit_trace" in check:
        say(compare.paired_table(check["paired_exit_trace"]))
    say(f"results: {out}", results=str(out))
    record_results(args, store, doc, str(out.resolve()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    build(BuildRequest(debug=args.debug))  # the default appliance; the demo's --machine applies at boot
    where = build_dir()
    (where / "results").mkdir(parents=True, exist_ok=True)
    out = output_path(str(where / "results" / "benchmark.json"))
    if args.clock == "auto":
        args.clock = _demo_clock(args)
    _bench(where / "benchmark", args, out)
    return 0


def _demo_clock(args: argparse.Namespace) -> str:
    """The demo's clock: the instruction clock beside the wall one under TCG (the counts
    repeat where the host's time does not), when this QEMU can load our plugin."""
    from appliance.assemble import plugin
    from appliance.boot.qemu import binary, qemu_version
    from appliance.machines import Arch

    if choose_accel(args).accel is not Accel.TCG:
        return "wall"
    try:
        plugin.ensure(qemu_version(binary(Arch.X86_64)))
    except ApplianceError as exc:
        print(f"note: the instruction clock is not available ({exc}); the demo measures wall time only",
              file=sys.stderr)
        return "wall"
    return "instructions"


def cmd_inspect(args: argparse.Namespace) -> int:
    from appliance.assemble import inventory, release

    if args.cost:
        return _inspect_cost(args)
    with tempfile.TemporaryDirectory(prefix="appliance-inspect-") as tmp:
        info = inventory.report(bundle.load(release.unpack_any(Path(args.bundle), Path(tmp))))
    info["bundle"] = args.bundle  # not the temporary directory it was unpacked into
    say(inventory.text(info), **info)
    return 0


def _inspect_cost(args: argparse.Namespace) -> int:
    """inspect --cost: boot the bundle, the same with a boot-only initrd, and with the
    initcalls timed, N times each, interleaved; then price every source (analysis/cost.py)."""
    from appliance.analysis import cost
    from appliance.runs import costboots

    if args.n < 1:
        raise ApplianceError("-n must be at least 1")
    target = load_bundle(args.bundle, args)
    if not target.contents:
        raise ApplianceError(f"bundle {args.bundle} does not list its contents by source: rebuild it")
    print(f"pricing {args.bundle}: {args.n} boots each of the bundle, of it with initcall_debug, with a boot-only "
          "initrd and with the init alone, interleaved (+1 warm-up each)", file=sys.stderr)
    out = output_path(args.output or f"cost-{target.name}.json")
    host = hostfacts.collect(target.arch)
    without = _kernels_without_fragments(target) if args.fragments else {}
    boots = costboots.boot(target, choose_accel(args), args.n, debug_words=cost.debug_words(),
                           keep=cost.boot_paths(target.contents), init=cost.init_paths(target.contents),
                           timeout=args.timeout, without=without)
    try:
        table = cost.of_boots(target, *boots.counted(), boots.counted_fragments()).to_dict()
    except ValueError as exc:
        raise ApplianceError(f"bundle {args.bundle}: {exc}: see `appliance run {args.bundle}`") from None
    results.write(out, results.cost(boots.plain.document(True, host), table))
    say(cost.text(table), cost=table, bundle=args.bundle)
    say(f"results: {out} (`appliance report {out}` draws it)", results=str(out))
    return 0


def _kernels_without_fragments(target: bundle.Bundle) -> dict[str, Path]:
    """inspect --cost --fragments: the bundle's minimal kernel built without each of its
    optional fragments (in the shared object tree: an incremental build each)."""
    from dataclasses import replace

    from appliance.assemble import minikernel

    if not target.minimal_kernel:
        raise ApplianceError(f"--fragments prices a minimal kernel's fragments: bundle {target.path} runs "
                             f"{target.kernel_release} from {target.kernel_facts.get('source')}")
    base = minikernel.recipe_of(target.kernel_facts)
    out = {}
    for name, _ in base.fragments:
        if name in minikernel.FRAGMENTS:
            continue
        print(f"building the kernel without fragment {name} (minutes the first time)", file=sys.stderr)
        recipe = replace(base, fragments=tuple(f for f in base.fragments if f[0] != name))
        out[name] = minikernel.build_locked(recipe).image
    if not out:
        print(f"note: bundle {target.path}'s kernel has no optional fragment to price", file=sys.stderr)
    return out


def cmd_sbom(args: argparse.Namespace) -> int:
    """The bundle's SBOM (SPDX 2.3 or CycloneDX 1.5 JSON), on stdout or into -o FILE."""
    from appliance.assemble import release, sbom

    with tempfile.TemporaryDirectory(prefix="appliance-sbom-") as tmp:
        target = bundle.load(release.unpack_any(Path(args.bundle), Path(tmp)))
        doc = sbom.FORMATS[args.format](target, sbom.inventory(target))
    text = json.dumps(doc, indent=1) + "\n"
    if args.output:
        atomic_write(Path(args.output), text.encode())
        entries = doc["packages"] if args.format == "spdx" else doc["components"]
        print(f"sbom: {args.output} ({args.format}, {len(entries)} entries)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_dts(args: argparse.Namespace) -> int:
    """The bundle's device tree as DTS source (aarch64 bundles)."""
    from appliance.assemble import devicetree, release

    with tempfile.TemporaryDirectory(prefix="appliance-dts-") as tmp:
        target = bundle.load(release.unpack_any(Path(args.bundle), Path(tmp)))
        if target.dtb is None:
            raise ApplianceError(f"bundle {args.bundle} has no device tree ({target.arch.value} {target.machine.value}: "
                                 "only aarch64 bundles carry board.dtb)")
        source = devicetree.to_dts(devicetree.parse(target.dtb.read_bytes()))
    say(source.rstrip("\n"), dts=source)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from appliance.assemble import release

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


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Boot BUNDLE to a point, save its state through QMP: a snapshot folder for --restore."""
    from appliance.boot import snapshot as taking

    if args.restore:
        raise ApplianceError("snapshot boots the bundle afresh: drop --restore")
    target = load_bundle(args.bundle, args)
    choice = choose_accel(args)
    point = args.at.replace(":", "-")
    out = Path(args.output or f"{Path(args.bundle).resolve()}.snapshot-{point}")
    spec = BootSpec(target, choice.accel, args.timeout, extra_cmdline=args.append or "")
    taken = taking.take(spec, args.at, out)
    size = taken.state_bytes
    say(f"snapshot {out}: {args.at} after {taken.manifest['taken_after_ms']:.0f} ms, state {size / 2**20:.1f} MiB "
        f"({target.memory_mib} MiB guest); restore it with `--restore {out}`", snapshot=str(out), point=args.at,
        state_bytes=size, taken_after_ms=taken.manifest["taken_after_ms"])
    return 0


def cmd_kernel_lock(args: argparse.Namespace) -> int:
    lock_path = kernelfetch.LOCK
    newest = kernelfetch.newest_available()
    kernelfetch.write_lock(lock_path, newest)
    say(f"pinned {newest.package}={newest.version} in {lock_path}", package=newest.package, version=newest.version,
        lock=str(lock_path))
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Resolve a template's [packages] debian with apt again and rewrite its lock file."""
    from appliance.assemble import guestprog, packages
    from appliance.assemble.template import TEMPLATES, find_template, load_template

    template = load_template(find_template(args.template, TEMPLATES), guestprog.available())
    if not template.debian:
        raise ApplianceError(f"template {template.name} has no [packages] debian: there is nothing to lock")
    old = packages.lock_file(template)
    previous = pkglock.read(old)
    before = {p.name: p.version for p in (previous.pins if previous else ())}
    lock = packages.relock(template, apt.Apt())
    changed = pkglock.changes(before, {p.name: p.version for p in lock.pins})
    say(f"pinned {len(lock.pins)} packages in {old}" + (": " + ", ".join(changed) if changed else " (no change)"),
        lock=str(old), packages={p.name: p.version for p in lock.pins}, changed=changed)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """What the cache holds, part by part; --clean removes what no lock or template uses."""
    from appliance.assemble import cache

    root = kernelfetch.cache_dir()
    found = cache.entries(root, cache.in_use())
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

    p = verbs.add_parser("build", help="build a template's bundle with SCons")
    p.add_argument("template", nargs="?", default="benchmark",
                   help="a name in rootfs_templates/ or a path to a .toml file (default benchmark)")
    p.add_argument("--machine", choices=[m.value for m in Machine],
                   help="a variant for this machine, built into build/<template>+<machine>/")
    p.add_argument("--build-dir", help="where outputs go instead of the checkout's build/")
    p.add_argument("--kernel", help="your own bzImage")
    p.add_argument("--kernel-recipe", choices=[k.value for k in Kernel], help="the template's kernel instead")
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
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its results file (-o)")
    bench_options(p)
    p.set_defaults(func=cmd_bench)
    p = verbs.add_parser("compare", help="boot two bundles interleaved and compare their phases")
    p.add_argument("a", help=f"side A: {options.BUNDLE}")
    p.add_argument("b", help="side B: the same kinds (or A again, with --append-b)")
    p.add_argument("-o", "--output", help="results JSON (default compare.json)")
    p.add_argument("--confidence", type=options.fraction, default=0.95, help="family-wise confidence (default 0.95)")
    p.add_argument("--primary", default=compare.PRIMARY,
                   help=f"the phase the question is about, tested at the full level (default {compare.PRIMARY})")
    p.add_argument("--max-n", type=int,
                   help="sequential: look every N boots and stop once the primary phase is decided, at most MAX_N")
    p.add_argument("--append-b", metavar="WORDS", help="kernel command-line words added to B's boots only "
                   "(compare a bundle with itself plus a knob)")
    p.add_argument("--restore-b", metavar="SNAPSHOT", help="B restores this snapshot of its bundle instead of booting "
                   "(A cold boot against B restore: compare X X --restore-b SNAP --primary service_ready)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted compare from its results file (-o)")
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
    p.set_defaults(func=cmd_demo, n=DEMO_N, clock="auto")
    p = verbs.add_parser("inspect", help="what a bundle, .tar.zst or .iso holds: files, sizes, kernel, modules; "
                         "--cost: what each part costs at boot")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--cost", action="store_true", help="boot it (N with the unpack timed, N plain) and price every "
                   "source: bytes in the initramfs and on the root, unpack, module loads")
    p.add_argument("-n", type=int, default=3, help="with --cost: boots of each kind (default %(default)s)")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto", help="with --cost: as for bench")
    p.add_argument("--timeout", type=options.positive, default=options.BOOT_TIMEOUT_S,
                   help="with --cost: seconds per boot before it counts as hung")
    p.add_argument("-o", "--output", help="with --cost: results JSON (default cost-<bundle>.json)")
    p.add_argument("--fragments", action="store_true", help="with --cost, on a minimal kernel: build it without each "
                   "optional fragment and price the fragment's share of the kernel phase")
    p.set_defaults(func=cmd_inspect, machine=None)
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
    p = verbs.add_parser("snapshot", help="boot a bundle, stop it at a point and save its whole state (for --restore)")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--at", default="payload_start", help="payload_start (default), service_ready, or probe:NAME")
    p.add_argument("-o", "--output", help="the snapshot folder (default: <bundle>.snapshot-<point> beside the bundle)")
    boot_options(p)
    p.set_defaults(func=cmd_snapshot)
    p = verbs.add_parser("sbom", help="what a bundle holds as an SBOM: SPDX 2.3 or CycloneDX 1.5 JSON")
    p.add_argument("bundle", help=options.BUNDLE)
    p.add_argument("--format", choices=("spdx", "cyclonedx"), default="spdx")
    p.add_argument("-o", "--output", help="write it here (default: stdout)")
    p.set_defaults(func=cmd_sbom)
    p = verbs.add_parser("kernel-lock", help="pin the newest Debian 6.1 kernel in recipes/kernel/debian.lock")
    p.set_defaults(func=cmd_kernel_lock)
    analysis_verbs.register(verbs)
    history.register(verbs)
    gate.register(verbs)
    bisect.register(verbs)
    cli_tune.register(verbs)
    cli_series.register(verbs)
    cli_fleet.register(verbs)
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
    except BrokenPipeError:
        raise  # `appliance ... | head`: entry() ends quietly
    except OSError as exc:  # a disk full, a file gone, a permission: one line (--debug: the traceback)
        error = ApplianceError(fsutil.os_error_line(exc))
    partial = output.results_file()
    if partial is not None and partial.is_file() and partial.stat().st_mtime_ns >= started_ns:  # written by this run
        error.args = (f"{error}; the partial results (marked incomplete) are in {partial}",)
    if args.debug:
        logging.exception("failure")
    print(f"error: {error}", file=sys.stderr)
    if isinstance(error, BootError) and error.console_tail:
        print("console tail:\n" + error.console_tail, file=sys.stderr)
    # a verb whose exit codes carry verdicts (gate: 1 is a regression) says errors its own way
    error_code = getattr(args, "error_exit", None)
    return error.exit_code if error_code is None or isinstance(error, Interrupted) else int(error_code)


def entry() -> NoReturn:
    try:
        sys.exit(main())
    except BrokenPipeError:  # `appliance ... | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    entry()

"""`appliance tune BUNDLE`: boot the bundle and every knob's variant interleaved, rank
what each knob changes, then measure the helpful knobs together against the base.

The results file is written after every round, so an interrupted run keeps what it had;
`--resume` continues it (refusing results from another host or another bundle).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance import results
from appliance.boot import hostfacts
from appliance.cli.options import BUNDLE, bench_options, choose_accel, load_bundle, output_path, plan_of
from appliance.cli.output import say
from appliance.errors import ApplianceError, BundleError, KernelError
from appliance.runs import bench, compare, tune

# what makes two hosts the same for a comparison: results of different ones never mix
SAME_HOST = ("cpu_model", "host_kernel", "qemu_version", "cpus")


def _sessions(target: Any, choice: Any, plan: bench.Plan, knobs: list[tune.Knob],
              workdir: Path) -> dict[str, bench.Session]:
    out = {"base": bench.Session(target, choice, plan)}
    for knob in knobs:
        variant, words = tune.apply(target, knob, workdir)
        extra = " ".join(filter(None, (plan.extra_cmdline, words)))
        out[knob.name] = bench.Session(variant, choice, bench.Plan(
            plan.channel, plan.n, plan.warmup, plan.timeout, True, extra_cmdline=extra))
    return out


def _candidates(analysis_path: Path, top: int) -> list[str]:
    """The CONFIG_ symbols behind the heaviest built-in initcalls of an analyze result:
    initcall -> the object that defines it -> obj-$(CONFIG_...) in its Makefile."""
    from appliance.assemble import minikernel

    doc = results.read(analysis_path)
    calls = [c for c in doc.get("analysis", {}).get("initcalls", []) if not c.get("module")]
    if not calls:
        raise ApplianceError(f"{analysis_path} has no initcall analysis: run `appliance analyze BUNDLE -o FILE` first")
    heaviest = [c["key"] for c in sorted(calls, key=lambda c: -c["mean_us"])][: top * 3]
    found = minikernel.initcall_symbols(minikernel.locked_source(), heaviest)
    symbols = list(dict.fromkeys(s for fn in heaviest if (s := found.get(fn))))[:top]
    say("candidates from the heaviest initcalls:\n" + "\n".join(
        f"  {fn:<40} CONFIG_{found[fn]}" if found.get(fn) else f"  {fn:<40} (always built)" for fn in heaviest[:top]),
        candidates={fn: found.get(fn) for fn in heaviest})
    if not symbols:
        raise ApplianceError("none of the heaviest initcalls is built by an option that can be turned off")
    return symbols


def _compression_knobs(target: Any, verbose: bool) -> list[tune.Knob]:
    """For a minimal-kernel bundle: its kernel image in every other compression, each
    built (or taken from the cache) now; nothing for other kernels."""
    from appliance.assemble import minikernel
    from appliance.assemble.template import KERNEL_COMPRESSIONS

    if not target.minimal_kernel:
        return []
    base = minikernel.recipe_of(target.kernel_facts)
    knobs = []
    for compression in KERNEL_COMPRESSIONS:
        if compression == base.compression:
            continue
        started = time.monotonic()
        files = minikernel.build_locked(replace(base, compression=compression), verbose)
        print(f"kernel image {compression}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        knobs.append(tune.Knob(f"kernel {compression}", "the minimal kernel's image compressed so (none: vmlinux "
                               "through PVH, no decompressor)", kernel_image=str(files.image)))
    return knobs


def _kconfig_knobs(target: Any, spec: str, verbose: bool) -> tuple[list[tune.Knob], list[dict[str, Any]]]:
    """One knob per symbol of SPEC ("A,B" or @FILE, a symbol a line): the bundle's minimal
    kernel without it, built in the shared object tree (an incremental build, ccache)."""
    from appliance.assemble import minikernel

    text = Path(spec[1:]).read_text() if spec.startswith("@") else spec.replace(",", "\n")
    symbols = [s.strip().removeprefix("CONFIG_") for s in text.splitlines() if s.strip() and not s.startswith("#")]
    if not symbols:
        raise ApplianceError("--kconfig names no symbol: give SYMBOL,SYMBOL or @FILE")
    base = minikernel.recipe_of(target.kernel_facts)
    config = (minikernel.build_locked(base, verbose).image.parent / "config").read_text()
    knobs, builds = [], []
    for symbol in symbols:
        if f"CONFIG_{symbol}=" not in config:
            print(f"note: CONFIG_{symbol} is not set in the bundle's kernel: nothing to remove", file=sys.stderr)
            continue
        started = time.monotonic()
        try:
            files = minikernel.build_locked(base.without(symbol), verbose)
        except ApplianceError as exc:
            print(f"note: the kernel without CONFIG_{symbol} does not build: {str(exc).splitlines()[0]}", file=sys.stderr)
            builds.append({"symbol": symbol, "seconds": time.monotonic() - started, "error": str(exc)})
            continue
        seconds = time.monotonic() - started
        removed = (files.image.parent / "kconfig-removed").read_text().split()
        builds.append({"symbol": symbol, "seconds": round(seconds, 1), "also_removed": removed})
        print(f"kernel without CONFIG_{symbol}: {seconds:.0f} s{f' (kconfig also removed {len(removed)})' if removed else ''}",
              file=sys.stderr)
        knobs.append(tune.Knob(f"-{symbol}", f"the minimal kernel without CONFIG_{symbol}",
                               kernel_image=str(files.image)))
    return knobs, builds


def _resume(path: Path, sessions: dict[str, bench.Session], host: dict[str, Any], digest: str) -> int:
    """Load the finished rounds of an earlier run of the same tune; return how many."""
    doc = results.read(path)
    if results.kind(doc) != "tune":
        raise ApplianceError(f"{path} is not a tune results file: drop --resume or give another -o")
    earlier = doc["base"]["host"]
    if any(earlier.get(k) != host.get(k) for k in SAME_HOST):
        raise ApplianceError(f"{path} was measured on another host ({earlier.get('cpu_model')}, "
                             f"{earlier.get('host_kernel')}): results of two hosts never mix; start afresh with another -o")
    if doc["base"]["bundle"]["digest"] != digest:
        raise ApplianceError(f"{path} is of another build of this bundle: start afresh with another -o")
    saved = {"base": doc["base"], **doc["variants"]}
    if set(saved) != set(sessions):
        raise ApplianceError(f"{path} tuned other knobs ({', '.join(sorted(saved))}): give the same --knobs")
    rounds = min(len(side["runs"]) for side in saved.values())
    for name, session in sessions.items():
        session.runs = saved[name]["runs"][:rounds]
        session.consoles = [""] * rounds
    return rounds


def _document(sessions: dict[str, bench.Session], host: dict[str, Any], complete: bool,
              extra: dict[str, Any]) -> dict[str, Any]:
    docs = {name: s.document(complete, host) for name, s in sessions.items()}
    return results.tune(docs.pop("base"), docs, extra, complete=complete)


def cmd_tune(args: argparse.Namespace) -> int:
    target = load_bundle(args.bundle, args)
    if args.kconfig_from:
        args.kconfig = ",".join(_candidates(Path(args.kconfig_from), args.top))
    if args.kconfig:
        knobs, builds = _kconfig_knobs(target, args.kconfig, args.debug)
        say(None, builds=builds)
    else:
        knobs = tune.catalog(target) + (tune.rebuild_catalog(target) + _compression_knobs(target, args.debug)
                                        if args.rebuild else [])
    if args.list and not args.kconfig:
        say("\n".join(f"{k.name:<28} {k.why}" for k in knobs), knobs=[k.name for k in knobs])
        return 0
    if args.knobs and not args.kconfig:
        try:
            knobs = tune.select(knobs, [n.strip() for n in args.knobs.split(",") if n.strip()])
        except ValueError as exc:
            raise ApplianceError(str(exc)) from None
    choice, plan = choose_accel(args), plan_of(args)
    if plan.n < 3:
        raise ApplianceError("tune needs -n of at least 3 boots per variant")
    out = output_path(args, args.output or f"tune-{Path(args.bundle).resolve().name}.json")
    host = hostfacts.collect(target.arch)
    workdir = Path(tempfile.mkdtemp(prefix="appliance-tune-"))  # derived kernels (PVH)
    atexit.register(shutil.rmtree, workdir, True)
    usable = []
    for knob in knobs:
        try:
            tune.apply(target, knob, workdir)
            usable.append(knob)
        except (KernelError, BundleError) as exc:
            print(f"note: knob {knob.name!r} left out: {exc}", file=sys.stderr)
    knobs = usable
    sessions = _sessions(target, choice, plan, knobs, workdir)
    start = _resume(out, sessions, host, target.digest) if args.resume and out.is_file() else 0
    print(f"tuning {args.bundle}: base + {len(knobs)} knobs, {plan.warmup} warm-up + {plan.n} rounds"
          f"{f', resuming after {start}' if start else ''}", file=sys.stderr)

    def save(rounds: int) -> bool:
        results.write(out, _document(sessions, host, False, {"knobs": [k.name for k in knobs], "rounds": rounds}))
        return False

    complete = False
    try:
        bench.interleave(list(sessions.values()), plan.warmup, plan.n, looks=range(1, plan.n + 1), stop=save,
                         start=start)
        complete = True
    finally:
        rows = tune.rank(sessions["base"].runs, {k: s.runs for k, s in sessions.items() if k != "base"})
        extra: dict[str, Any] = {"knobs": [k.name for k in knobs], "rows": rows}
        results.write(out, _document(sessions, host, complete, extra))
    say(tune.table(rows), rows=rows)
    best = tune.helpful(rows)
    if best and not args.no_combine:
        extra["combined"] = _combined(target, choice, plan, [k for k in knobs if k.name in best], rows, workdir)
        results.write(out, _document(sessions, host, complete, extra))
    say(f"results: {out}", results=str(out))
    return 0


def _combined(target: Any, choice: Any, plan: bench.Plan, helping: list[tune.Knob],
              rows: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """The helpful knobs together against the base, interleaved: do the savings add up?"""
    together = tune.combine(helping)
    print(f"combining {together.name}", file=sys.stderr)
    pair = _sessions(target, choice, plan, [together], workdir)
    bench.interleave(list(pair.values()), plan.warmup, plan.n)
    result = compare.compare(pair["base"].runs, pair[together.name].runs)
    row = next(r for r in result["rows"] if r["phase"] == compare.PRIMARY)
    alone = sum(r["to_init"]["delta_ms"] for r in rows if r["knob"] in {k.name for k in helping})
    say(f"combined ({together.name}): to_init {row['median_a']:.1f} -> {row['median_b']:.1f} ms "
        f"({(row['ratio'] - 1) * 100:+.1f}%, CI {(row['ci'][0] - 1) * 100:+.1f}% to {(row['ci'][1] - 1) * 100:+.1f}%); "
        f"the knobs alone summed to {alone:+.1f} ms; {row['verdict'] or 'no real difference'}")
    combined = {"knob": together.name, "words": together.words, "settings": together.settings,
                "comparison": result, "sum_alone_ms": alone, "runs_base": pair["base"].runs,
                "runs_combined": pair[together.name].runs}
    say(None, combined={k: v for k, v in combined.items() if not k.startswith("runs_")})
    return combined


def register(verbs: Any) -> None:
    p = verbs.add_parser("tune", help="which no-rebuild knobs (kernel arguments, vCPUs, memory, machine) speed this "
                         "bundle up, measured")
    p.add_argument("bundle", help=BUNDLE)
    p.add_argument("--kconfig", metavar="SYMBOLS", help="kernel options instead of knobs (minimal-kernel bundles): "
                   "SYMBOL,SYMBOL or @FILE; each a kernel without it, built incrementally, booted and compared")
    p.add_argument("--kconfig-from", metavar="ANALYSIS", help="take --kconfig's symbols from an analyze result: the "
                   "options behind its heaviest built-in initcalls")
    p.add_argument("--top", type=int, default=8, help="how many candidate symbols --kconfig-from takes (default 8)")
    p.add_argument("--knobs", help="comma-separated knob names (default: every knob that applies; see --list)")
    p.add_argument("--list", action="store_true", help="list the knobs that apply to the bundle and stop")
    p.add_argument("--rebuild", action="store_true", help="also knobs that rebuild a part: the initrd's compression, "
                   "each module left out, the minimal kernel's image compression (built now)")
    p.add_argument("--no-combine", action="store_true", help="skip measuring the helpful knobs together")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its results file")
    p.add_argument("-o", "--output", help="results JSON (default tune-<bundle>.json), written after every round")
    bench_options(p)
    p.set_defaults(func=cmd_tune, n=6)

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
from appliance.cli.options import (
    BUNDLE,
    bench_options,
    choose_accel,
    load_bundle,
    output_path,
    plan_of,
    record_results,
    store_for,
)
from appliance.cli.output import say
from appliance.errors import ApplianceError, BundleError, KernelError
from appliance.runs import compare, tunables, tune


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


def _compression_knobs(target: Any, verbose: bool) -> list[tunables.Knob]:
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
        knobs.append(tunables.Knob(f"kernel {compression}", "the minimal kernel's image compressed so (none: vmlinux "
                                   "through PVH, no decompressor)", kernel_image=str(files.image)))
    return knobs


def _kconfig_knobs(target: Any, spec: str, verbose: bool) -> tuple[list[tunables.Knob], list[dict[str, Any]]]:
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
        knobs.append(tunables.Knob(f"-{symbol}", f"the minimal kernel without CONFIG_{symbol}",
                                   kernel_image=str(files.image)))
    return knobs, builds


def cmd_tune(args: argparse.Namespace) -> int:
    target = load_bundle(args.bundle, args)
    if args.kconfig_from:
        args.kconfig = ",".join(_candidates(Path(args.kconfig_from), args.top))
    if args.kconfig:
        knobs, builds = _kconfig_knobs(target, args.kconfig, args.debug)
        say(None, builds=builds)
    else:
        knobs = tunables.catalog(target) + (tunables.rebuild_catalog(target) + _compression_knobs(target, args.debug)
                                            if args.rebuild else [])
    if args.list and not args.kconfig:
        say("\n".join(f"{k.name:<28} {k.why}" for k in knobs), knobs=[k.name for k in knobs])
        return 0
    if args.knobs and not args.kconfig:
        try:
            knobs = tunables.select(knobs, [n.strip() for n in args.knobs.split(",") if n.strip()])
        except ValueError as exc:
            raise ApplianceError(str(exc)) from None
    choice, plan = choose_accel(args), plan_of(args)
    least = 2 if plan.clock.counts else 3  # a count's range needs two; a rank test three
    if plan.n < least:
        raise ApplianceError(f"tune needs -n of at least {least} boots per variant on the {plan.clock} clock")
    out = output_path(args.output or f"tune-{Path(args.bundle).resolve().name}.json")
    store = store_for(args)
    host = hostfacts.collect(target.arch)
    workdir = Path(tempfile.mkdtemp(prefix="appliance-tune-"))  # derived kernels (PVH)
    atexit.register(shutil.rmtree, workdir, True)
    usable = []
    for knob in knobs:
        try:
            tunables.apply(target, knob, workdir)
            usable.append(knob)
        except (KernelError, BundleError) as exc:
            print(f"note: knob {knob.name!r} left out: {exc}", file=sys.stderr)
    knobs = usable
    if knobs and not plan.clock.counts and (
            note := compare.reach_note(plan.n, 0.05 / len(knobs), f" for {len(knobs)} knobs at 95%")):
        print(note, file=sys.stderr)
    sessions = tune.sessions_for(target, choice, plan, knobs, workdir)
    start = tune.resume(out, sessions, host) if args.resume and out.is_file() else 0
    print(f"tuning {args.bundle}: base + {len(knobs)} knobs, {plan.warmup} warm-up + {plan.n} rounds"
          f"{f', resuming after {start}' if start else ''}", file=sys.stderr)
    tuned = tune.run(sessions, knobs, plan, host, out, start)
    say(tunables.table(tuned.rows), rows=tuned.rows)
    if warning := compare.order_line(tuned.extra.get("order_effect")):
        print(warning, file=sys.stderr)
    best = tunables.helpful(tuned.rows)
    if best and not args.no_combine:
        helping = [k for k in knobs if k.name in best]
        print(f"combining {tunables.combine(helping).name}", file=sys.stderr)
        together = tune.combined(target, choice, plan, helping, tuned.rows, workdir)
        _say_combined(together)
        tuned.extra["combined"] = together
    doc = tune.document(sessions, host, tuned.complete, tuned.extra)
    results.write(out, doc)  # the final document, with the combined knobs when they ran
    say(f"results: {out}", results=str(out))
    record_results(args, store, doc, str(out.resolve()))
    return 0


def _say_combined(combined: dict[str, Any]) -> None:
    row = next(r for r in combined["comparison"]["rows"] if r["phase"] == compare.PRIMARY)
    scale, unit = (1e6, "M instructions") if combined.get("unit") == "instructions" else (1.0, "ms")
    say(f"combined ({combined['knob']}): to_init {row['median_a'] / scale:.3f} -> {row['median_b'] / scale:.3f} {unit} "
        f"({(row['ratio'] - 1) * 100:+.2f}%, interval {(row['ci'][0] - 1) * 100:+.2f}% to "
        f"{(row['ci'][1] - 1) * 100:+.2f}%); the knobs alone summed to {combined['sum_alone'] / scale:+.3f} {unit}; "
        f"{row['verdict'] or 'no real difference'}")
    say(None, combined={k: v for k, v in combined.items() if not k.startswith("runs_")})


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

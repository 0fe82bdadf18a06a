"""`appliance range BUNDLE KERNEL...`: one appliance across a series of kernels."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import results
from appliance.analysis import seriesplot
from appliance.boot import hostfacts
from appliance.build import kernel
from appliance.cli.output import say
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.runs import bench, series


def cmd_range(args: argparse.Namespace, load: Callable[..., Any], accel: Callable[..., Any], qemu_path: Callable[[], str],
              output: Callable[[argparse.Namespace, str], Path], plan_of: Callable[[argparse.Namespace], bench.Plan]) -> int:
    target = load(args.bundle, args)
    if target.manifest.get("build", {}).get("initrd", {}).get("modules"):
        raise ApplianceError(f"bundle {args.bundle} carries modules of its own kernel, which other kernels cannot load: "
                             "range a bundle without [modules] (e.g. build/benchmark)")
    images = [kernel.own_kernel(Path(p)).image.resolve() for p in args.kernels]
    names = [_label(p, args.kernels) for p in images]
    if len(images) < 2:
        raise ApplianceError("range needs at least two kernels")
    choice, plan = accel(args), plan_of(args)
    out = output(args, args.output or f"range-{Path(args.bundle).resolve().name}.json")
    qemu = qemu_path()
    host = hostfacts.collect(qemu)
    sessions = [bench.Session(target.with_kernel(image), qemu, choice,
                              bench.Plan(plan.channel, plan.n, plan.warmup, plan.timeout, True,
                                         extra_cmdline=plan.extra_cmdline)) for image in images]
    print(f"range: {args.bundle} across {len(images)} kernels, {plan.warmup} warm-up + {plan.n} rounds", file=sys.stderr)
    complete = False
    try:
        bench.interleave(sessions, plan.warmup, plan.n)
        complete = True
    finally:
        doc = {"format": results.FORMAT, "complete": complete, "phase": args.phase,
               "series": [{"kernel": str(image), "name": name, **s.document(complete, host)}
                          for image, name, s in zip(images, names, sessions, strict=True)]}
        results.write(out, doc)
    pairs = [(name, s.runs) for name, s in zip(names, sessions, strict=True)]
    found = series.steps(pairs, args.phase)
    say(series.table(pairs, found, args.phase), steps=found,
        medians={name: series.medians(runs) for name, runs in pairs})
    if args.svg:
        atomic_write(Path(args.svg), seriesplot.render(names, [series.medians(r) for _, r in pairs], found,
                                                       f"{Path(args.bundle).name} across {len(names)} kernels").encode())
        say(f"svg: {args.svg}", outputs={"svg": args.svg})
    say(f"results: {out}", results=str(out))
    return 0


def _label(image: Path, given: list[str]) -> str:
    """A short name for a kernel: its version from the header, else its file's folder."""
    version = kernel.bzimage_version(image.read_bytes()[:65536])
    return version or image.parent.name or image.name


def register(verbs: Any, bench_options: Callable[[argparse.ArgumentParser], None], load: Any, accel: Any, qemu: Any,
             output: Any, plan_of: Any, bundle_help: str) -> None:
    p = verbs.add_parser("range", help="one appliance across a series of kernels: phases per kernel, steps flagged")
    p.add_argument("bundle", help=f"{bundle_help}, without [modules]")
    p.add_argument("kernels", nargs="+", metavar="KERNEL", help="kernel images in series order (bzImage or vmlinux)")
    p.add_argument("--phase", default="kernel", choices=series.PHASES, help="the phase whose steps are tested")
    p.add_argument("--svg", metavar="FILE", help="write the phases across the series as an SVG plot")
    p.add_argument("-o", "--output", help="results JSON (default range-<bundle>.json)")
    bench_options(p)
    p.set_defaults(func=lambda a: cmd_range(a, load, accel, qemu, output, plan_of), n=5)

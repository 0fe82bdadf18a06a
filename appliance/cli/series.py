"""`appliance range BUNDLE KERNEL...`: one appliance across a series of kernels."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.analysis import seriesplot
from appliance.assemble import kernelfetch
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
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.runs import compare, series


def cmd_range(args: argparse.Namespace) -> int:
    target = load_bundle(args.bundle, args)
    if target.initrd_modules:
        raise ApplianceError(f"bundle {args.bundle} carries modules of its own kernel, which other kernels cannot load: "
                             "range a bundle without [modules] (e.g. build/benchmark)")
    images = [kernelfetch.own_kernel(Path(p)).image.resolve() for p in args.kernels]
    names = [_label(p, args.kernels) for p in images]
    for name, image in _built_kernels(target, args):
        names.append(name)
        images.append(image)
    if len(images) < 2:
        raise ApplianceError("range needs at least two kernels (images, --src trees or --git tags)")
    choice, plan = choose_accel(args), plan_of(args)
    store = store_for(args)
    if not plan.clock.counts and (
            note := compare.reach_note(plan.n, 0.05 / (len(images) - 1), f" for {len(images) - 1} steps at 95%")):
        print(note, file=sys.stderr)
    out = output_path(args.output or f"range-{Path(args.bundle).resolve().name}.json")
    print(f"range: {args.bundle} across {len(images)} kernels, {plan.warmup} warm-up + {plan.n} rounds", file=sys.stderr)
    doc = series.boot_series(target, choice, plan, list(zip(names, images, strict=True)), args.phase, out)
    pairs = [(side["name"], side["runs"]) for side in doc["series"]]
    found = doc["steps"]
    say(series.table(pairs, found, args.phase), steps=found,
        medians={name: series.medians(runs) for name, runs in pairs})
    if args.svg:
        atomic_write(Path(args.svg), seriesplot.render(names, [series.medians(r) for _, r in pairs], found,
                                                       f"{Path(args.bundle).name} across {len(names)} kernels").encode())
        say(f"svg: {args.svg}", outputs={"svg": args.svg})
    say(f"results: {out}", results=str(out))
    record_results(args, store, doc, str(out.resolve()))
    return 0


def _built_kernels(target: Any, args: argparse.Namespace) -> list[tuple[str, Path]]:
    """Minimal kernels built from each --src tree and each --tags commit of --git, with
    the recipe of the bundle's own minimal kernel (or the default one): the same
    fragments, probe patch and compression, another source. Each build is cached by its
    source's identity, so a second range over the same tags boots at once."""
    from appliance.assemble import minikernel

    if args.tags and not args.git:
        raise ApplianceError("--tags names commits of a repository: give it with --git REPO")
    sources: list[tuple[str, Path, str]] = []
    for src in args.src or []:
        tree, identity = minikernel.own_source(Path(src))
        sources.append((Path(src).resolve().name, tree, identity))
    for tag in [t.strip() for t in (args.tags or "").split(",") if t.strip()]:
        tree, identity = minikernel.export_tag(Path(args.git), tag, kernelfetch.cache_dir())
        sources.append((tag, tree, identity))
    if not sources:
        return []
    base = minikernel.recipe_of(target.kernel_facts) if target.minimal_kernel else minikernel.recipe()
    built = []
    for name, tree, identity in sources:
        started = time.monotonic()
        print(f"range: minimal kernel from {name}: cached, or built now (minutes)", file=sys.stderr)
        files = minikernel.build(replace(base, source_id=identity), tree, kernelfetch.cache_dir(), verbose=args.debug)
        print(f"range: {name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        built.append((name, files.image))
    return built


def _label(image: Path, given: list[str]) -> str:
    """A short name for a kernel: its version from the header, else its file's folder."""
    version = kernelfetch.bzimage_version(image.read_bytes()[:65536])
    return version or image.parent.name or image.name


def register(verbs: Any) -> None:
    p = verbs.add_parser("range", help="one appliance across a series of kernels: phases per kernel, steps flagged")
    p.add_argument("bundle", help=f"{BUNDLE}, without [modules]")
    p.add_argument("kernels", nargs="*", metavar="KERNEL", help="kernel images in series order (bzImage or vmlinux)")
    p.add_argument("--src", action="append", metavar="TREE", help="a Linux source tree: a minimal kernel built from it "
                   "joins the series (after the images; repeat for several)")
    p.add_argument("--git", metavar="REPO", help="a Linux git repository for --tags")
    p.add_argument("--tags", metavar="A,B,...", help="tags (or any commits) of --git, each exported and built as a "
                   "minimal kernel, in this order after --src")
    p.add_argument("--phase", default="kernel", choices=series.PHASES, help="the phase whose steps are tested")
    p.add_argument("--svg", metavar="FILE", help="write the phases across the series as an SVG plot")
    p.add_argument("-o", "--output", help="results JSON (default range-<bundle>.json)")
    bench_options(p)
    p.set_defaults(func=cmd_range, n=5)

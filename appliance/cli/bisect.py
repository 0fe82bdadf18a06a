"""`appliance bisect`: the first commit between a good and a bad one where a boot phase
stepped. `--git REPO` builds the minimal kernel of each commit of a Linux tree and boots
BUNDLE with it (range's export, cached, through ccache); `--build-cmd 'CMD {commit}
{out}'` runs any build that leaves a bundle in {out} (the commits come from --repo).
Exit 0 with the first bad commit; 4 when a step could not be classified within
--max-n boots, with the window it leaves."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance import bundle, proc
from appliance.assemble import kernelfetch, minikernel
from appliance.cli.options import (
    BUNDLE,
    bench_options,
    choose_accel,
    load_bundle,
    plan_of,
    positive,
    record_results,
    store_for,
)
from appliance.cli.output import say
from appliance.errors import ApplianceError, ToolFailed
from appliance.phases import PHASE_NAMES
from appliance.runs import bisect

UNDECIDED_EXIT = 4


def commits(repo: Path, good: str, bad: str) -> list[str]:
    """GOOD, then every commit on the way to BAD (BAD last), abbreviated."""
    try:
        ends = [proc.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{c}^{{commit}}"], timeout=60).stdout.strip()
                for c in (good, bad)]
        between = proc.run(["git", "-C", str(repo), "rev-list", "--reverse", "--ancestry-path", f"{ends[0]}..{ends[1]}"],
                           timeout=120).stdout.split()
    except ToolFailed as exc:
        raise ApplianceError(f"{repo}: cannot list the commits from {good} to {bad} ({exc}): name two commits of it, "
                             "the good one an ancestor of the bad one") from None
    if not between:
        raise ApplianceError(f"{repo}: {bad} does not come after {good}: the good commit must be an ancestor of the bad")
    return [c[:12] for c in (ends[0], *between)]


def build_words(command: str) -> list[str]:
    """--build-cmd split as a shell would split it (no shell runs it); one line if it cannot be."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ApplianceError(f"--build-cmd {command!r} cannot be split into words ({exc}): close its quotes") from None
    if not words:
        raise ApplianceError("--build-cmd is empty: give the command that builds {commit} into {out}")
    return words


def _builder(args: argparse.Namespace, work: Path) -> Any:
    """How a commit becomes a bundle: the user's command, or a minimal kernel of the tree."""
    if args.build_cmd:
        def run_command(commit: str) -> bundle.Bundle:
            out = work / commit
            argv = [word.replace("{commit}", commit).replace("{out}", str(out)) for word in build_words(args.build_cmd)]
            print(f"bisect: building {commit}: {' '.join(argv)}", file=sys.stderr)
            try:
                proc.run(argv, timeout=args.build_timeout, group=True)  # the build and all it started
            except ToolFailed as exc:
                raise ApplianceError(f"the build of {commit} failed: {exc}") from None
            return bundle.load(out)
        return run_command
    target = load_bundle(args.bundle, args)
    base = minikernel.recipe_of(target.kernel_facts) if target.minimal_kernel else minikernel.recipe()

    def build_kernel(commit: str) -> bundle.Bundle:
        tree, identity = minikernel.export_tag(Path(args.git), commit, kernelfetch.cache_dir())
        print(f"bisect: minimal kernel of {commit}: cached, or built now (minutes)", file=sys.stderr)
        files = minikernel.build(replace(base, source_id=identity), tree, kernelfetch.cache_dir(), verbose=args.debug)
        return target.with_kernel(files.image)
    return build_kernel


def cmd_bisect(args: argparse.Namespace) -> int:
    if args.phase not in PHASE_NAMES:
        raise ApplianceError(f"--phase {args.phase!r} is not a phase: one of {', '.join(PHASE_NAMES)}")
    if bool(args.git) == bool(args.build_cmd):
        raise ApplianceError("give how to build a commit: --git REPO (a Linux tree: minimal kernels with BUNDLE), or "
                             "--build-cmd 'CMD {commit} {out}' with --repo REPO")
    if args.git and not args.bundle:
        raise ApplianceError("--git boots BUNDLE with each commit's kernel: give the bundle")
    if args.build_cmd:
        build_words(args.build_cmd)  # a command that cannot be split is one line before anything runs
    repo = Path(args.git or args.repo or ".")
    plan = plan_of(args)
    least = 2 if plan.clock.counts else 3
    if plan.n < least:
        raise ApplianceError(f"bisect needs -n of at least {least} boots a side per look on the {plan.clock} clock")
    series = commits(repo, args.good, args.bad)
    store = store_for(args)
    if store is not None and not args.label:
        args.label = f"bisect {args.good}..{args.bad}"
    choice = choose_accel(args)
    print(f"bisect: {len(series) - 1} commits after {series[0]} up to {series[-1]}, at most "
          f"{len(series).bit_length()} steps", file=sys.stderr)
    out = Path(args.output or tempfile.mkdtemp(prefix="appliance-bisect-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="appliance-bisect-builds-") as work:
            outcome = bisect.bisect(series, _builder(args, Path(work)), choice, plan, phase=args.phase,
                                    max_n=args.max_n or plan.n, out=lambda i: out / f"step-{i + 1}.json",
                                    save=(lambda doc: record_results(args, store, doc, "bisect")) if store else None)
    except BaseException:
        if not args.output and not any(out.iterdir()):  # a folder we made, and nothing in it
            out.rmdir()
        raise
    lines = [f"bisect on the {plan.clock} clock ({'guest instructions' if plan.clock.counts else 'host time'} "
             f"of {args.phase})", f"{'step':>4} {'good':<12} {'mid':<12} {'bad':<12} {'boots':>5}  verdict"]
    lines += [f"{i + 1:>4} {s.good:<12} {s.mid:<12} {s.bad:<12} {s.boots:>5}  {s.verdict}: {s.reason}"
              for i, s in enumerate(outcome.steps)]
    if outcome.first_bad:
        lines.append(f"first bad commit: {outcome.first_bad} ({args.phase} stepped after {outcome.window[0]}); "
                     f"{len(outcome.steps)} steps, {outcome.builds} builds")
    else:
        lines.append(f"undecided: the step lies between {outcome.window[0]} and {outcome.window[1]} (a midpoint could not "
                     f"be classified within {args.max_n or plan.n} boots a side: raise --max-n)")
    say("\n".join(lines), first_bad=outcome.first_bad, window=list(outcome.window), builds=outcome.builds,
        steps=[s.__dict__ for s in outcome.steps], results=str(out))
    return 0 if outcome.first_bad else UNDECIDED_EXIT


def register(verbs: Any) -> None:
    p = verbs.add_parser("bisect", help="the first commit between a good and a bad one where a boot phase stepped")
    p.add_argument("bundle", nargs="?", help=f"with --git: {BUNDLE}, booted with each commit's minimal kernel")
    p.add_argument("--good", required=True, help="a commit where the phase is as it should be")
    p.add_argument("--bad", required=True, help="a later commit where it stepped")
    p.add_argument("--git", metavar="REPO", help="a Linux git tree: each commit's minimal kernel boots BUNDLE")
    p.add_argument("--build-cmd", metavar="CMD", help="a command that builds commit {commit} into the bundle folder "
                   "{out} (split like a shell would, no shell run)")
    p.add_argument("--repo", metavar="REPO", help="with --build-cmd: the repository whose commits these are (default .)")
    p.add_argument("--build-timeout", type=positive, default=3600, help="seconds a build may take (default 3600)")
    p.add_argument("--phase", default="kernel", help="the phase that stepped (default kernel)")
    p.add_argument("--max-n", type=int, help="boot on in steps of -n up to this while a midpoint is unclassified")
    p.add_argument("-o", "--output", help="a folder for each step's results JSON (default: a temporary one)")
    bench_options(p)
    p.set_defaults(func=cmd_bisect, n=4, clock="auto")

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import results
from appliance.boot import hostfacts
from appliance.cli.output import say
from appliance.errors import ApplianceError, BundleError, KernelError
from appliance.runs import bench, compare, tune

# what makes two hosts the same for a comparison: results of different ones never mix
SAME_HOST = ("cpu_model", "host_kernel", "qemu_version", "cpus")


def _sessions(target: Any, qemu: str, choice: Any, plan: bench.Plan, knobs: list[tune.Knob],
              workdir: Path) -> dict[str, bench.Session]:
    out = {"base": bench.Session(target, qemu, choice, plan)}
    for knob in knobs:
        variant, words = tune.apply(target, knob, workdir)
        extra = " ".join(filter(None, (plan.extra_cmdline, words)))
        out[knob.name] = bench.Session(variant, qemu, choice, bench.Plan(
            plan.channel, plan.n, plan.warmup, plan.timeout, True, extra_cmdline=extra))
    return out


def _resume(path: Path, sessions: dict[str, bench.Session], host: dict[str, Any], digest: str) -> int:
    """Load the finished rounds of an earlier run of the same tune; return how many."""
    doc = results.read(path)
    if "tune" not in doc:
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
    return {"format": results.FORMAT, "complete": complete, "base": docs.pop("base"), "variants": docs, "tune": extra}


def cmd_tune(args: argparse.Namespace, load: Callable[[str, argparse.Namespace], Any],
             accel: Callable[[argparse.Namespace], Any], qemu_path: Callable[[], str],
             output: Callable[[argparse.Namespace, str], Path], plan_of: Callable[[argparse.Namespace], bench.Plan]) -> int:
    target = load(args.bundle, args)
    knobs = tune.catalog(target)
    if args.list:
        say("\n".join(f"{k.name:<28} {k.why}" for k in knobs), knobs=[k.name for k in knobs])
        return 0
    if args.knobs:
        try:
            knobs = tune.select(knobs, [n.strip() for n in args.knobs.split(",") if n.strip()])
        except ValueError as exc:
            raise ApplianceError(str(exc)) from None
    choice, plan = accel(args), plan_of(args)
    if plan.n < 3:
        raise ApplianceError("tune needs -n of at least 3 boots per variant")
    out = output(args, args.output or f"tune-{Path(args.bundle).resolve().name}.json")
    qemu = qemu_path()
    host = hostfacts.collect(qemu)
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
    sessions = _sessions(target, qemu, choice, plan, knobs, workdir)
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
        extra["combined"] = _combined(target, qemu, choice, plan, [k for k in knobs if k.name in best], rows, workdir)
        results.write(out, _document(sessions, host, complete, extra))
    say(f"results: {out}", results=str(out))
    return 0


def _combined(target: Any, qemu: str, choice: Any, plan: bench.Plan, helping: list[tune.Knob],
              rows: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """The helpful knobs together against the base, interleaved: do the savings add up?"""
    together = tune.combine(helping)
    print(f"combining {together.name}", file=sys.stderr)
    pair = _sessions(target, qemu, choice, plan, [together], workdir)
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


def register(verbs: Any, bench_options: Callable[[argparse.ArgumentParser], None], load: Any, accel: Any, qemu: Any,
             output: Any, plan_of: Any, bundle_help: str) -> None:
    p = verbs.add_parser("tune", help="which no-rebuild knobs (kernel arguments, vCPUs, memory, machine) speed this "
                         "bundle up, measured")
    p.add_argument("bundle", help=bundle_help)
    p.add_argument("--knobs", help="comma-separated knob names (default: every knob that applies; see --list)")
    p.add_argument("--list", action="store_true", help="list the knobs that apply to the bundle and stop")
    p.add_argument("--no-combine", action="store_true", help="skip measuring the helpful knobs together")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its results file")
    p.add_argument("-o", "--output", help="results JSON (default tune-<bundle>.json), written after every round")
    bench_options(p)
    p.set_defaults(func=lambda a: cmd_tune(a, load, accel, qemu, output, plan_of), n=6)

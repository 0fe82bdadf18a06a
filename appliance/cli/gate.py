"""`appliance gate`: is a candidate's boot time a regression against a baseline? For CI:
exit 0 (pass), 1 (fail: a regression), 4 (inconclusive, with the boots that would
decide it), 2 (the gate could not run: an error, said in one line); --junit, --markdown and --json for the CI system that runs it.

The candidate is a results file, or `--bench BUNDLE` booted now (sequentially: -n boots,
then more up to --max-n while undecided). The baseline is the newest run set in the
results store of the same appliance measured the same way (template, machine, accel,
vCPUs, memory, channel), or the newest with `--baseline LABEL`, or `--baseline-file`.
A baseline from another host or another QEMU is refused unless --cross-host, and then
said loudly in every output.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from appliance import results
from appliance.boot import hostfacts
from appliance.cli.options import (
    BUNDLE,
    bench_options,
    choose_accel,
    clock_of,
    fraction,
    load_bundle,
    output_path,
    plan_of,
    record_results,
    store_for,
)
from appliance.cli.output import say
from appliance.clocks import Clock, Unit, unit_of
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write
from appliance.markup import clean
from appliance.markup import markdown as markdown_text
from appliance.phases import PHASE_NAMES
from appliance.results import RunRecord, RunSet
from appliance.runs import bench, compare, gate

EXIT = {gate.PASS: 0, gate.FAIL: 1, gate.INCONCLUSIVE: 4}
ERROR_EXIT = 2  # the gate itself could not decide (a bad option, no baseline, a broken boot): not a regression
# what changes the measurement: a baseline matches the candidate on all of these (cmdline:
# the bundle's, the runner's and --append's words; a baseline booted with other kernel
# arguments is another measurement)
SAME_MEASUREMENT = ("template", "machine", "accel", "cpus", "memory_mib", "channel", "clock", "cmdline")
# what else changes instruction counts: a baseline on the instruction clock matches this too
SAME_COUNTS = ("qemu_version",)
GATE_SOURCE = "gate:"  # how the store knows a gate's own candidates, which are never a default baseline
SAME_HOST = ("host_name", "cpu_model", "qemu_version")


def cmd_gate(args: argparse.Namespace) -> int:
    from appliance.store import db, record

    if args.phase not in PHASE_NAMES:
        raise ApplianceError(f"--phase {args.phase!r} is not a phase: one of {', '.join(PHASE_NAMES)}")
    if bool(args.results) == bool(args.bench):
        raise ApplianceError("give the candidate: a results file, or --bench BUNDLE to boot it now")
    for option in ("junit", "markdown"):  # checked before any boot: a report is never lost to its path
        target = getattr(args, option)
        if target and (Path(target).is_dir() or not Path(target).resolve().parent.is_dir()):
            raise ApplianceError(f"--{option} {target}: give a file in an existing folder")
    # the store, for the baseline (not needed with --baseline-file)
    engine, url = (None, "") if args.baseline_file else db.open_store(args.db)
    notes = []
    if args.results:
        doc = results.read(Path(args.results))
        candidate, candidate_digest, target = results.main_side(doc), record.digest(doc), None
        side = next(iter(results.labelled_sides(doc)))
        if side:  # a compare, tune, series... document: say which of its run sets is gated
            notes.append(f"the candidate is the {results.kind(doc)} document's run set {side!r}")
        clock = Clock((candidate.get("settings") or {}).get("clock") or "wall")
        planned = candidate
    else:
        candidate, candidate_digest, target = None, "", load_bundle(args.bench, args)
        clock = clock_of(args)
        session, host = _session(args, target)
        planned = session.document(False, host)  # the run set the boots will make, none made yet
    unit = unit_of(clock)
    baseline, about = _baseline(args, engine, url, planned, candidate_digest, clock)
    looks = 1
    if candidate is None:
        candidate, looks = _bench(args, session, host, baseline, unit)
    mismatch = _host_mismatch(about, candidate)
    if mismatch and not args.cross_host:
        raise ApplianceError(f"the baseline was measured elsewhere ({mismatch}): boot times of two hosts or QEMUs do "
                             "not compare; record a baseline here, or give --cross-host to compare anyway")
    decision = gate.decide(baseline["runs"], candidate["runs"], args.phase, threshold=args.threshold,
                           confidence=args.confidence, looks=looks,
                           unit=unit)
    if candidate.get("complete") is False:
        notes.append("INCOMPLETE: the candidate's run set was interrupted; its boots so far were gated")
    warning = "; ".join(filter(None, (f"CROSS-HOST: {mismatch}" if mismatch else "",
                                      _busy(baseline["runs"], candidate["runs"], unit), *notes)))
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    report = {"decision": decision.to_dict(), "baseline": about, "candidate": _describe(candidate), "warning": warning}
    say(_text(decision, about, warning), gate=report)
    if args.junit:
        atomic_write(Path(args.junit), junit(decision, about, warning))
    if args.markdown:
        atomic_write(Path(args.markdown), markdown(decision, about, warning).encode())
    return EXIT[decision.verdict]


def _baseline(args: argparse.Namespace, engine: Any | None, url: str, candidate: RunSet, candidate_digest: str,
              clock: Clock) -> tuple[RunSet, dict[str, Any]]:
    """The baseline's run set and what it is (its run set's dimensions, or its file): one
    measured as CANDIDATE (the candidate's run set, or the one its boots will make) is, on
    the same clock, and on the instruction clock with the same QEMU and kernel command
    line (what changes the counts: docs/MEASUREMENT.md). The dimensions are the store's
    own reading of a run set (record.dimensions), so they match what it recorded."""
    from appliance.store import db, query, record

    if args.baseline_file:
        side = results.main_side(results.read(Path(args.baseline_file)))
        return side, {"file": args.baseline_file, **_describe(side)}
    assert engine is not None, "the store is open unless the baseline is a file"
    dims = record.dimensions(candidate, "bench", "", "")
    same = SAME_MEASUREMENT + (SAME_COUNTS if clock.counts else ())
    where = {k: v for k, v in dims.items() if k in same and v is not None}
    if args.baseline:
        where["label"] = args.baseline
    # a gate's own candidates are no baseline unless a label names them
    sets = query.run_set_list(engine, url, where, not_from=None if args.baseline else GATE_SOURCE)
    for run_set in reversed(sets):  # the newest that is not the candidate itself
        doc, name = query.document_of(engine, url, run_set.id)
        if candidate_digest and record.digest(doc) == candidate_digest:
            continue
        return results.labelled_sides(doc)[name], {"run_set": run_set.id, "recorded_at": run_set.recorded_at.isoformat(),
                                                    **run_set.dims}
    what = ", ".join(f"{k}={v}" for k, v in where.items())
    raise ApplianceError(f"no baseline in {db.shown(url)} for {what}: record one first (`appliance bench BUNDLE "
                         "--label main` on the main branch), or give --baseline-file RESULTS")


def _session(args: argparse.Namespace, target: Any) -> tuple[bench.Session, dict[str, Any]]:
    """The candidate's boots, planned up to --max-n, and this host's facts."""
    plan = plan_of(args)
    session = bench.Session(target, choose_accel(args), replace(plan, n=max(args.max_n or plan.n, plan.n)))
    return session, hostfacts.collect(target.arch)  # --restore too: a restore can be gated


def _bench(args: argparse.Namespace, session: bench.Session, host: dict[str, Any], baseline: RunSet,
           unit: Unit) -> tuple[RunSet, int]:
    """The candidate's boots (runs/gate.bench_candidate), written to -o and recorded."""
    store = store_for(args)
    out = output_path(args.output or f"gate-{Path(args.bench).resolve().name}.json")
    doc, looks = gate.bench_candidate(session, baseline["runs"], n=plan_of(args).n, phase=args.phase,
                                      threshold=args.threshold, confidence=args.confidence, unit=unit, out=out,
                                      host=host)
    record_results(args, store, doc, GATE_SOURCE + str(out.resolve()))
    return doc, looks


def _busy(baseline: list[RunRecord], candidate: list[RunRecord], unit: Unit) -> str:
    """A warning when boots ran on a busy host (their host_load says so), or ""."""
    counts = {side: (results.disturbed(runs), len(results.counted(runs)))
              for side, runs in (("baseline", baseline), ("candidate", candidate))}
    if not any(busy for busy, _ in counts.values()):
        return ""
    said = ", ".join(f"{busy} of {n} {side} boots" for side, (busy, n) in counts.items() if busy)
    effect = ("the instruction counts do not depend on it" if unit is Unit.INSTRUCTIONS
              else "wall times from a busy host are slower and spread wider")
    return f"BUSY HOST: {said} ran while the host was busy ({effect})"


def _host_mismatch(about: dict[str, Any], candidate: RunSet) -> str:
    host = candidate.get("host") or {}
    differ = [f"{key} {about.get(key)!r} vs {host.get(key)!r}" for key in SAME_HOST
              if about.get(key) is not None and host.get(key) is not None and about.get(key) != host.get(key)]
    return "; ".join(differ)


def _describe(side: RunSet) -> dict[str, Any]:
    host, bundle = side.get("host") or {}, side.get("bundle") or {}
    return {"template": bundle.get("name"), "bundle_digest": bundle.get("digest"), "host_name": host.get("host_name"),
            "cpu_model": host.get("cpu_model"), "qemu_version": host.get("qemu_version")}


def _text(decision: gate.Decision, about: dict[str, Any], warning: str) -> str:
    where = f"run set {about['run_set']}" if "run_set" in about else about.get("file", "?")
    clock = "the instruction clock (instructions)" if decision.unit == Unit.INSTRUCTIONS else "the wall clock (ms)"
    lines = [f"gate: {decision.verdict.upper()}: {decision.reason}",
             f"baseline: {where} ({decision.n_baseline} boots), candidate: {decision.n_candidate} boots, "
             f"threshold {decision.threshold * 100:g}%, decided on {clock}"
             + ("" if decision.unit == Unit.INSTRUCTIONS else f", confidence {decision.confidence * 100:g}%")]
    if decision.verdict == gate.INCONCLUSIVE:
        lines.append(f"about {decision.boots_needed} boots a side would decide it (--bench BUNDLE -n N --max-n M)")
    if warning:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


def junit(decision: gate.Decision, about: dict[str, Any], warning: str) -> bytes:
    """One JUnit test case: a failure for a regression, skipped when inconclusive."""
    suite = ET.Element("testsuite", name="appliance gate", tests="1",
                       failures=str(int(decision.verdict == gate.FAIL)),
                       skipped=str(int(decision.verdict == gate.INCONCLUSIVE)), errors="0")
    case = ET.SubElement(suite, "testcase", classname="appliance.gate",
                         name=clean(f"{about.get('template') or 'appliance'} {decision.phase}"))
    detail, reason = clean(_text(decision, about, warning)), clean(decision.reason)  # XML cannot carry controls
    if decision.verdict == gate.FAIL:
        ET.SubElement(case, "failure", message=reason, type="regression").text = detail
    elif decision.verdict == gate.INCONCLUSIVE:
        ET.SubElement(case, "skipped", message=reason).text = detail
    ET.SubElement(case, "system-out").text = detail
    root = ET.Element("testsuites")
    root.append(suite)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def markdown(decision: gate.Decision, about: dict[str, Any], warning: str) -> str:
    """A pull-request comment: the verdict and the figures behind it."""
    mark = {gate.PASS: "✅ pass", gate.FAIL: "❌ regression", gate.INCONCLUSIVE: "⚠️ inconclusive"}[decision.verdict]
    ci = f"{(decision.ci[0] - 1) * 100:+.1f}% to {(decision.ci[1] - 1) * 100:+.1f}%" if decision.ci else "-"
    change = f"{(decision.ratio - 1) * 100:+.1f}%" if decision.ratio else "-"
    counted = decision.unit == Unit.INSTRUCTIONS
    unit, interval = ("M instructions", "range") if counted else ("ms", f"{decision.confidence * 100:g}% CI")
    lines = [f"### Boot time gate: {mark}", "", markdown_text(decision.reason), "",
             f"| phase | baseline ({unit}) | candidate ({unit}) | change | {interval} | boots |",
             "|---|---|---|---|---|---|",
             f"| {decision.phase} | {_figure(decision.median_baseline, counted)} | "
             f"{_figure(decision.median_candidate, counted)} | {change} | {ci} "
             f"| {decision.n_baseline} / {decision.n_candidate} |", "",
             f"Threshold {decision.threshold * 100:g}%; baseline "
             + (f"run set {about['run_set']} ({markdown_text(about.get('label') or 'no label')})" if "run_set" in about
                else f"file {markdown_text(about.get('file'))}") + "."]
    if decision.verdict == gate.INCONCLUSIVE:
        lines.append(f"About {decision.boots_needed} boots a side would decide it.")
    if warning:
        lines.append(f"\n**Warning: {markdown_text(warning)}**")
    return "\n".join(lines) + "\n"


def _figure(value: float | None, instructions: bool) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.3f}" if instructions else f"{value:.1f}"


def register(verbs: Any) -> None:
    p = verbs.add_parser("gate", help="is a candidate a boot-time regression against the baseline? (CI: exit 0 pass, "
                         "1 fail, 4 inconclusive, 2 an error)")
    p.add_argument("results", nargs="?", help="the candidate: a results JSON written by bench (or --bench)")
    p.add_argument("--bench", metavar="BUNDLE", help=f"boot the candidate now: {BUNDLE}")
    p.add_argument("--max-n", type=int, help="with --bench: boot on in steps of -n up to this while undecided")
    p.add_argument("--baseline", metavar="LABEL", help="the newest run set with this label (default: the newest of "
                   "the same appliance measured the same way)")
    p.add_argument("--baseline-file", metavar="RESULTS", help="the baseline from a results file instead of the store")
    p.add_argument("--phase", default=compare.PRIMARY, help=f"the phase gated on (default {compare.PRIMARY})")
    p.add_argument("--threshold", type=fraction, default=None,
                   help=f"the relative slowdown that counts as a regression (default {gate.THRESHOLD:g} on the wall "
                   f"clock, {gate.COUNT_THRESHOLD:g} on the instruction clock)")
    p.add_argument("--confidence", type=fraction, default=0.95, help="the gate's confidence (default 0.95)")
    p.add_argument("--cross-host", action="store_true", help="compare with a baseline from another host or QEMU")
    p.add_argument("--junit", metavar="FILE", help="write the verdict as JUnit XML (Jenkins, GitLab, GitHub)")
    p.add_argument("--markdown", metavar="FILE", help="write a summary for a pull-request comment")
    p.add_argument("-o", "--output", help="with --bench: the candidate's results JSON (default gate-<bundle>.json)")
    bench_options(p)
    p.set_defaults(func=cmd_gate, n=6, clock="auto", error_exit=ERROR_EXIT)

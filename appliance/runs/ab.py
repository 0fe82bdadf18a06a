"""Interleaved run sets of one question: A against B (compare), and one bundle through
several channels (crosscheck). Each writes its results document as it ends, partial
ones too (marked incomplete), and returns it; the CLI only prints."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance import results
from appliance.boot import hostfacts
from appliance.boot.accel import AccelChoice
from appliance.boot.qemu import Channel
from appliance.bundle import Bundle
from appliance.clocks import unit_of
from appliance.errors import ApplianceError
from appliance.runs import bench, compare
from appliance.snapshot import Snapshot


@dataclass(frozen=True)
class Question:
    """What a comparison asks: at which confidence, about which phase, with how many
    boots at most (MAX_N > the plan's n: sequential), and what B adds to its boots."""

    confidence: float = 0.95
    primary: str = compare.PRIMARY
    max_n: int = 0  # 0: the plan's n, no sequential looks
    append_b: str = ""
    restore_b: Snapshot | None = None  # B restores this snapshot (A boots)


def compare_bundles(a: Bundle, b: Bundle, accel: AccelChoice, plan: bench.Plan, *, question: Question,
                    out: Path, resumed: bool = False) -> dict[str, Any]:
    """Boot A and B interleaved (in a random, balanced order per round) and compare them
    phase by phase; with a larger max_n, boot on until the primary phase is decided.
    RESUMED: OUT holds an interrupted compare of the same question, which this continues."""
    max_n = question.max_n or plan.n
    looks = compare.looks_for(plan.n, max_n)
    host = hostfacts.collect(a.arch)
    b_words = " ".join(filter(None, (plan.extra_cmdline, question.append_b)))
    plans = (replace(plan, n=max_n), replace(plan, n=max_n, extra_cmdline=b_words,
                                             restore=question.restore_b or plan.restore))
    sessions = [bench.Session(bundle, accel, side) for bundle, side in zip((a, b), plans, strict=True)]
    start = _resume(out, sessions, question, host) if resumed else 0
    reason: list[str | None] = [None]
    unit = unit_of(plan.clock)  # the instruction clock's counts are compared as counts

    def stop(rounds: int) -> bool:
        if len(looks) == 1:
            return False
        reason[0] = compare.decided(compare.compare(sessions[0].runs, sessions[1].runs,
                                                    confidence=question.confidence, primary=question.primary,
                                                    looks=len(looks), unit=unit))
        return reason[0] is not None

    def document(complete: bool, ran: int) -> dict[str, Any]:
        side_a, side_b = (s.document(complete, host) for s in sessions)
        result = compare.compare(side_a["runs"], side_b["runs"], confidence=question.confidence,
                                 primary=question.primary, looks=len(looks), unit=unit)
        if len(looks) > 1:
            result["sequential"] = {"looks": looks, "stopped_after": ran, "reason": reason[0]}
        return results.comparison(side_a, side_b, result, complete=complete, append_b=question.append_b)

    doc: dict[str, Any] = bench.run_then_write(sessions, plan.warmup, max_n, out, document=document, looks=looks, stop=stop,
                                               start=start)
    return doc


def _resume(out: Path, sessions: list[bench.Session], question: Question, host: dict[str, Any]) -> int:
    doc = bench.saved_doc(out, "compare")
    if (doc.get("append_b") or "") != question.append_b:
        raise ApplianceError(f"--resume: {out} compared B with {doc.get('append_b')!r} added: give the same --append-b")
    return bench.resume(sessions, [doc["a"], doc["b"]], out, host)


def crosscheck_channels(bundle: Bundle, accel: AccelChoice, plan: bench.Plan, channels: list[Channel],
                        out: Path) -> dict[str, Any]:
    """Measure BUNDLE through each of CHANNELS, interleaved, and say how far they disagree.
    Exit boots are traced too, so the two channels can also be compared within one boot."""
    sessions = {c.value: bench.Session(bundle, accel, replace(plan, channel=c, paired_trace=c is Channel.EXIT))
                for c in channels}
    host = hostfacts.collect(bundle.arch)
    def document(complete: bool, _: int) -> dict[str, Any]:
        docs = {name: s.document(complete, host) for name, s in sessions.items()}
        check = compare.crosscheck({name: d["summary"] for name, d in docs.items()})
        if "exit" in docs:
            check["paired_exit_trace"] = compare.paired_disagreement(docs["exit"]["runs"])
        return results.crosscheck(docs, check, complete=complete)

    doc: dict[str, Any] = bench.run_then_write(list(sessions.values()), plan.warmup, plan.n, out, document=document)
    return doc

"""Bisecting a boot-time regression: between a good and a bad commit, the first commit
where a phase stepped.

Each step boots the midpoint interleaved against both ends of the window (so the
host's drift of the hour lands on all three alike) and classifies it with the compare
machinery: like the bad end and unlike the good one (the phase differs from good, not
from bad), or the other way round. Boots go on in steps of n up to max_n while the
midpoint is unclassified (the level split over the looks, compare's sequential rule);
a midpoint still unclassified then ends the bisect with the window it leaves: never a
guess. Every step is a results document of kind "bisect" (and is recorded when the
caller records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance import results
from appliance.boot import hostfacts
from appliance.boot.accel import AccelChoice
from appliance.bundle import Bundle
from appliance.clocks import Unit, unit_of
from appliance.results import RunRecord
from appliance.runs import bench, compare

GOOD, BAD, UNDECIDED = "good", "bad", "undecided"


@dataclass(frozen=True)
class Step:
    good: str  # the window's ends and the midpoint booted in this step
    mid: str
    bad: str
    verdict: str  # GOOD, BAD or UNDECIDED
    boots: int  # per side
    reason: str


@dataclass(frozen=True)
class Outcome:
    first_bad: str | None  # None: undecided, the window is what is left
    window: tuple[str, str]  # the last good and the first bad known
    steps: tuple[Step, ...]
    builds: int


def classify(good: list[RunRecord], mid: list[RunRecord], bad: list[RunRecord], *, phase: str,
             confidence: float, looks: int, unit: Unit = Unit.MS) -> tuple[str, str]:
    """Which side of the step MID lies on: the interval of MID/GOOD (at the level split
    over the looks) entirely beyond the halfway point of the step GOOD -> BAD (the
    geometric middle of BAD/GOOD) makes it bad, entirely short of it good. Halfway, not
    "differs from": two builds of one source can differ by a few percent (their layout,
    their order in a round), which a bisect after one big step must not take for it."""
    step = _row(compare.compare(good, bad, confidence=confidence, primary=phase, looks=looks, unit=unit), phase)
    if step is None or step["verdict"] is None:
        return UNDECIDED, f"the ends do not differ in {phase} (yet)"
    found = _row(compare.compare(good, mid, confidence=confidence, primary=phase, looks=looks, unit=unit), phase)
    if found is None or found["ci"] is None:
        return UNDECIDED, "too few boots of the midpoint"
    halfway = step["ratio"] ** 0.5
    low, high = found["ci"]
    slower = step["ratio"] > 1  # the bad end is slower (else faster)
    beyond, short = (low > halfway, high < halfway) if slower else (high < halfway, low > halfway)
    where = f"mid/good {found['ratio']:.3f} (CI {low:.3f}-{high:.3f}), halfway to bad {halfway:.3f}"
    if beyond:
        return BAD, f"like the bad end: {where}"
    if short:
        return GOOD, f"like the good end: {where}"
    return UNDECIDED, f"not yet clear of halfway: {where}"


def _row(comparison: dict[str, Any], phase: str) -> dict[str, Any] | None:
    return next((r for r in comparison["rows"] if r["phase"] == phase), None)


def bisect(commits: list[str], build: Callable[[str], Bundle], accel: AccelChoice, plan: bench.Plan, *, phase: str,
           max_n: int, out: Callable[[int], Path], save: Callable[[dict[str, Any]], None] | None = None,
           confidence: float = 0.95) -> Outcome:
    """COMMITS from the good one (first) to the bad one (last); BUILD(commit) makes a
    commit's bundle (cached by the caller). Each step's document goes to OUT(step) and
    to SAVE (the results store)."""
    lo, hi = 0, len(commits) - 1
    steps: list[Step] = []
    built: dict[str, Bundle] = {}

    def bundle_of(commit: str) -> Bundle:
        if commit not in built:
            built[commit] = build(commit)
        return built[commit]

    while hi - lo > 1:
        mid = (lo + hi) // 2
        names = (commits[lo], commits[mid], commits[hi])
        step = _step(names, [bundle_of(c) for c in names], accel, plan, phase=phase, max_n=max_n, confidence=confidence,
                     path=out(len(steps)), save=save)
        steps.append(step)
        if step.verdict == BAD:
            hi = mid
        elif step.verdict == GOOD:
            lo = mid
        else:
            return Outcome(None, (commits[lo], commits[hi]), tuple(steps), len(built))
    return Outcome(commits[hi], (commits[lo], commits[hi]), tuple(steps), len(built))


def _step(names: tuple[str, str, str], bundles: list[Bundle], accel: AccelChoice, plan: bench.Plan, *, phase: str,
          max_n: int, confidence: float, path: Path, save: Callable[[dict[str, Any]], None] | None) -> Step:
    looks = compare.looks_for(plan.n, max(max_n, plan.n))
    sessions = [bench.Session(b, accel, replace(plan, n=max(max_n, plan.n), keep_going=True)) for b in bundles]
    state = {"verdict": UNDECIDED, "reason": "not booted"}

    def decided(rounds: int) -> bool:
        state["verdict"], state["reason"] = classify(sessions[0].runs, sessions[1].runs, sessions[2].runs, phase=phase,
                                                     confidence=confidence, looks=len(looks),
                                                     unit=unit_of(plan.clock))
        return state["verdict"] != UNDECIDED

    host = hostfacts.collect(bundles[0].arch)

    def document(complete: bool, ran: int) -> dict[str, Any]:
        sides = {f"{role} {name}": s.document(complete, host)
                 for role, name, s in zip(("good", "mid", "bad"), names, sessions, strict=True)}
        step = {"good": names[0], "mid": names[1], "bad": names[2], "verdict": state["verdict"],
                "reason": state["reason"], "boots": ran, "phase": phase}
        return results.bisect_step(sides, step, complete=complete)

    doc = bench.run_then_write(sessions, plan.warmup, max(max_n, plan.n), path, document=document, looks=looks, stop=decided)
    if save is not None:
        save(doc)
    return Step(names[0], names[1], names[2], state["verdict"], doc["step"]["boots"], state["reason"])

"""The boots of `appliance tune`: the base and every knob's variant interleaved, the
results written after every round (an interrupted run keeps what it had and `--resume`
continues it), then the helpful knobs together against the base. What a knob is and
how the rows rank is runs/tunables.py's; this module boots them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance import results
from appliance.boot.accel import AccelChoice
from appliance.bundle import Bundle
from appliance.clocks import Unit, unit_of
from appliance.errors import ApplianceError
from appliance.runs import bench, compare, tunables


def sessions_for(target: Bundle, accel: AccelChoice, plan: bench.Plan, knobs: list[tunables.Knob],
                 workdir: Path) -> dict[str, bench.Session]:
    """The base's session and one per knob (its variant booted with its words), all
    going on after a failed boot (one knob that breaks the boot must not end the tune)."""
    out = {"base": bench.Session(target, accel, plan)}
    for knob in knobs:
        variant, words = tunables.apply(target, knob, workdir)
        out[knob.name] = bench.Session(variant, accel, replace(
            plan, keep_going=True, extra_cmdline=" ".join(filter(None, (plan.extra_cmdline, words)))))
    return out


def resume(path: Path, sessions: dict[str, bench.Session], host: dict[str, Any]) -> int:
    """Load the finished rounds of an earlier run of the same tune; return how many."""
    doc = results.read(path)
    if results.kind(doc) != "tune":
        raise ApplianceError(f"{path} is not a tune results file: drop --resume or give another -o")
    saved = {"base": doc["base"], **doc["variants"]}
    if set(saved) != set(sessions):
        raise ApplianceError(f"{path} tuned other knobs ({', '.join(sorted(saved))}): give the same --knobs")
    return bench.resume(list(sessions.values()), [saved[name] for name in sessions], path, host)


def document(sessions: dict[str, bench.Session], host: dict[str, Any], complete: bool,
             extra: dict[str, Any]) -> dict[str, Any]:
    docs = {name: s.document(complete, host) for name, s in sessions.items()}
    return results.tune(docs.pop("base"), docs, extra, complete=complete)


@dataclass
class Tuned:
    sessions: dict[str, bench.Session]
    rows: list[dict[str, Any]]  # tunables.rank's, best first
    extra: dict[str, Any]  # the document's "tune" part
    complete: bool


def run(sessions: dict[str, bench.Session], knobs: list[tunables.Knob], plan: bench.Plan, host: dict[str, Any],
        out: Path, start: int = 0) -> Tuned:
    """Boot SESSIONS interleaved for the plan's rounds (after START rounds that already
    ran), writing OUT after every round and at the end, partial or not."""
    names = [k.name for k in knobs]

    def save(rounds: int) -> bool:
        results.write(out, document(sessions, host, False, {"knobs": names, "rounds": rounds}))
        return False

    complete = False
    try:
        bench.interleave(list(sessions.values()), plan.warmup, plan.n, looks=range(1, plan.n + 1), stop=save,
                         start=start)
        complete = True
    finally:
        rows = tunables.rank(sessions["base"].runs, {k: s.runs for k, s in sessions.items() if k != "base"},
                             unit=unit_of(plan.clock))
        extra: dict[str, Any] = {"knobs": names, "rows": rows,
                                 "order_effect": compare.order_effect([s.runs for s in sessions.values()])}
        results.write(out, document(sessions, host, complete, extra))
    return Tuned(sessions, rows, extra, complete)


def combined(target: Bundle, accel: AccelChoice, plan: bench.Plan, helping: list[tunables.Knob],
             rows: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """The helpful knobs together against the base, interleaved: do the savings add up?"""
    together = tunables.combine(helping)
    pair = sessions_for(target, accel, plan, [together], workdir)
    bench.interleave(list(pair.values()), plan.warmup, plan.n)
    unit = unit_of(plan.clock)
    result = compare.compare(pair["base"].runs, pair[together.name].runs, unit=unit)
    delta = "delta_ms" if unit is Unit.MS else "delta_instructions"
    alone = sum(r["to_init"][delta] for r in rows if r["knob"] in {k.name for k in helping})
    return {"knob": together.name, "words": together.words, "settings": together.settings,
            "machine": together.machine.value if together.machine else None, "pvh": together.pvh,
            "initrd": list(together.initrd), "kernel_image": together.kernel_image or None,
            "comparison": result, "sum_alone": alone, "unit": unit.value, "runs_base": pair["base"].runs,
            "runs_combined": pair[together.name].runs}

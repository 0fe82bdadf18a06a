"""Boot a bundle many times and collect the results document."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from appliance import guestlog, results
from appliance.boot import hostfacts, hostload, measure, perf
from appliance.boot.accel import AccelChoice
from appliance.boot.measure import BootRun
from appliance.boot.qemu import BootSpec, Channel
from appliance.boot.tsc import runtime_cmdline
from appliance.bundle import Bundle
from appliance.clocks import Clock
from appliance.errors import ApplianceError, BootError
from appliance.machines import Accel
from appliance.phases import in_instructions
from appliance.results import RunRecord, RunSet
from appliance.snapshot import Snapshot

Progress = Callable[[int, int, float], None]


class Spread(Protocol):
    """Somewhere else to run interleaved rounds: a cluster of workers (appliance.fleet).
    The arguments and answer of `interleave`, whose rounds it runs in blocks, less START:
    it reads a resumed run's progress from the sessions."""

    def interleave(self, sessions: Sequence[Session], warmup: int, n: int, *, progress: Progress | None,
                   looks: Sequence[int], stop: Callable[[int], bool] | None) -> int: ...


def tty_progress(done: int, total: int, elapsed: float) -> None:
    """A one-line progress bar on stderr when it is a terminal; elsewhere (a CI log) one
    line after the first boot with how long the whole run will take, when that is long."""
    eta = elapsed / done * (total - done) if done else 0.0
    if not sys.stderr.isatty():
        if done == 1 and eta > LONG_RUN_S:
            print(f"estimate: {total} boots at {elapsed:.1f} s each: about {_duration(eta)} more", file=sys.stderr)
        return
    filled = int(30 * done / total)
    end = "\n" if done == total else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] boots {done}/{total}  "
                     f"elapsed {elapsed:.0f}s  eta {eta:.0f}s {end}")
    sys.stderr.flush()


LONG_RUN_S = 600.0  # a run longer than this says so after its first boot


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@dataclass(frozen=True)
class Plan:
    """How to measure: the channel, how many boots, and what to do on failure."""

    channel: Channel = Channel.TRACE
    n: int = 10
    warmup: int = 1
    timeout: float = 120.0
    keep_going: bool = False
    paired_trace: bool = False  # exit channel only: trace the same boots too (crosscheck)
    extra_cmdline: str = ""  # added to the kernel command line of these boots (e.g. initcall_debug)
    keep_consoles: bool = False  # keep each run's console text in Session.consoles (analyze)
    restore: Snapshot | None = None  # restore this snapshot instead of booting
    fleet: Spread | None = None  # boot on a cluster's workers instead of here (--cluster)
    clock: Clock = Clock.WALL  # instructions, virtual: count guest instructions at each probe too

    def spec(self, bundle: Bundle, accel: Accel) -> BootSpec:
        """How each boot of BUNDLE in this plan is made."""
        return BootSpec(bundle, accel, self.timeout, self.channel, self.extra_cmdline, trace=self.paired_trace,
                        restore=self.restore, clock=self.clock)


def bundle_facts(bundle: Bundle) -> dict[str, Any]:
    return {"path": str(bundle.path), "name": bundle.name, "digest": bundle.digest,
            "machine": bundle.machine.value, "cmdline": bundle.cmdline,
            "kernel_release": bundle.kernel_release, "arch": bundle.arch.value, "cpus": bundle.cpus,
            "memory_mib": bundle.memory_mib}


def check_channel(channel: Channel, accel: AccelChoice) -> None:
    if channel is Channel.PERF:
        ok, why = perf.available(accel.accel)
        if not ok:
            raise ApplianceError(f"the perf channel is not available here because {why}; use --channel trace")


def run_record(index: int, warmup: bool, run: BootRun | None, *, error: str | None = None,
               console_tail: str = "", overhead_ms: float | None = None,
               host_load: dict[str, Any] | None = None, slot: Slot | None = None) -> RunRecord:
    record: RunRecord = {"index": index, "warmup": warmup, "ok": run is not None}
    if slot is not None:  # where in an interleaved round this boot ran (order effects)
        record["round"], record["slot"] = slot.round, slot.position
    if run is None:
        record["error"], record["console_tail"] = error, console_tail
        return record
    start = run.events[0].host_time_ns
    record |= RunRecord(
        index=index, warmup=warmup, ok=True,
        start_ns=start,
        events=[{"name": e.name, "t_ms": (e.host_time_ns - start) / 1e6, "source": e.source} for e in run.events],
        phases_ms=run.phases,
        guest_probes=[{"name": n, "boottime_ns": ns} for n, ns in run.console_probes],
        qemu_max_rss_kib=run.max_rss_kib,
        qemu_lifetime_ms=run.qemu_lifetime_ms,
        runner_overhead_ms=overhead_ms,
        uart_us_per_char=run.uart_us_per_char,
        paired_trace_ms=run.paired_trace_ms or None,
        guest_modules=[{"name": n, "start_ns": s, "duration_ns": d} for n, s, d in run.modules],
        payload_status=run.payload_status,
        warnings=run.warnings,
        host_load=host_load,
    )
    if run.instructions:  # the instruction clock: each event's count, and the phases in instructions
        record["instructions"] = run.instructions
        record["phases_insn"] = in_instructions({e.name for e in run.events}, run.instructions)
        record["vcpu_instructions"] = run.vcpu_instructions
    if run.restored:  # started from a snapshot (restore, after_restore), not booted
        record["restored"] = True
    if run.forwards:  # a service's forwards: the host ports differ from boot to boot
        record["forwards"] = run.forwards
    if run.systemd is not None:  # an image's own init: systemd's view of the same boot
        record["systemd"] = run.systemd
    if run.guest_log:  # raw records, and what the report and exports read from them
        record["profiled_raw"] = run.guest_log
        record["profiled"] = guestlog.summary(guestlog.parse(run.guest_log))
    return record


@dataclass(frozen=True)
class Slot:
    """Where a boot ran in an interleaved run: its round, and its position in that round
    (0: booted first). Recorded so an order effect can be tested for afterwards."""

    round: int
    position: int


def round_orders(arms: int, rounds: int, rng: random.Random) -> list[list[int]]:
    """The order of ARMS in each of ROUNDS: randomized and balanced. Every cycle of ARMS
    rounds takes a fresh random order and uses each of its rotations once, in random
    order, so each arm boots first (and last) equally often per cycle, and no arm
    always follows the same one. A fixed order (A B A B) makes the first arm pay for
    whatever the host does between rounds (tune saw its base arm's qemu phase at 2-3x
    every knob's)."""
    orders: list[list[int]] = []
    while len(orders) < rounds:
        base = list(range(arms))
        rng.shuffle(base)
        rotations = [base[k:] + base[:k] for k in range(arms)]
        rng.shuffle(rotations)
        orders += rotations
    return orders[:rounds]


class Session:
    """Boots of one bundle through one channel; used by bench, compare and crosscheck."""

    def __init__(self, bundle: Bundle, accel: AccelChoice, plan: Plan) -> None:
        check_channel(plan.channel, accel)
        measure.refuse_shell(bundle)  # up front, not after a boot that waits at the prompt
        self.bundle, self.accel, self.plan = bundle, accel, plan
        self.spec = plan.spec(bundle, accel.accel)
        measure.check_restore(self.spec)  # a snapshot of another bundle or QEMU: one line before any boot
        self.runs: list[RunRecord] = []
        self.exit_probes: list[str] | None = None
        self.consoles: list[str] = []  # per run, when plan.keep_consoles ("" for a failed run)
        self.fleet: dict[str, Any] = {}  # the cluster and its workers' hosts, when a fleet ran the boots

    def boot(self, warmup: bool, slot: Slot | None = None) -> None:
        """One measured run (several boots for the exit channel), recorded in self.runs."""
        plan, index = self.plan, len(self.runs)
        started, cpu_before = time.monotonic(), hostload.sample()
        try:
            if plan.channel is Channel.EXIT:
                if self.exit_probes is None:
                    self.exit_probes = measure.discover_probes(self.spec)
                run = measure.boot_exit(self.spec, self.exit_probes)
            else:
                run = measure.boot(self.spec)
        except BootError as exc:
            self.runs.append(run_record(index, warmup, None, error=str(exc), console_tail=exc.console_tail, slot=slot))
            self.consoles.append("")
            if not plan.keep_going:
                raise BootError(f"{plan.channel.value} channel, boot {index + 1}: {exc}", exc.console_tail) from None
            return
        overhead = (time.monotonic() - started) * 1e3 - run.qemu_lifetime_ms
        load = hostload.during(cpu_before, hostload.sample(), run.qemu_cpu_s, hostload.load_average(), run.stopped_ms)
        self.runs.append(run_record(index, warmup, run, overhead_ms=overhead, host_load=load, slot=slot))
        self.consoles.append(run.console if plan.keep_consoles else "")

    def adopt(self, records: list[RunRecord], exit_probes: list[str], worker: dict[str, str], block: int) -> None:
        """Boots another host ran for this session (a fleet's block): renumbered after
        this session's own, each naming the worker and block that ran it."""
        for record in records:
            self.runs.append(cast(RunRecord, {**record, "index": len(self.runs), "worker": worker, "block": block}))
            self.consoles.append("")
        self.exit_probes = self.exit_probes or exit_probes

    def note_worker(self, cluster: str, worker: dict[str, str], accel: dict[str, str] | None,
                    host: dict[str, Any] | None) -> None:
        """The cluster that ran boots of this session, and a worker's host (fleet.workers)."""
        self.fleet.setdefault("cluster", cluster)
        self.fleet.setdefault("workers", {})[worker["address"]] = {
            "name": worker["name"], "host_name": worker["host_name"], "accel": accel, "host": host}

    def note_lost_worker(self, address: str, wave: int) -> None:
        """A worker that left the cluster during WAVE (its block ran again elsewhere)."""
        self.fleet.setdefault("lost_workers", []).append({"address": address, "wave": wave})

    def document(self, complete: bool, host: dict[str, Any]) -> RunSet:
        plan = self.plan
        settings = {"n": plan.n, "warmup": plan.warmup, "timeout_s": plan.timeout, "channel": plan.channel.value,
                    "clock": plan.clock.value,
                    "exit_probes": self.exit_probes,
                    "runtime_cmdline": runtime_cmdline(self.accel.accel, self.bundle.arch, plan.clock),
                    "extra_cmdline": plan.extra_cmdline}
        return results.run_set(host=host, accel={"used": self.accel.accel, "reason": self.accel.reason},
                                bundle=bundle_facts(self.bundle), settings=settings, runs=self.runs,
                                complete=complete, fleet=self.fleet)


def interleave(sessions: Sequence[Session], warmup: int, n: int, *, progress: Progress | None = tty_progress,
               looks: Sequence[int] = (), stop: Callable[[int], bool] | None = None, start: int = 0,
               seed: int | None = None) -> int:
    """Boot SESSIONS in rounds, one boot of each per round, in an order randomized per
    round (`round_orders`; SEED makes it repeatable): WARMUP uncounted rounds, then up
    to N counted ones; return how many counted rounds ran. Interleaving spreads the
    machine's drift over every side alike, and the random order spreads what the first
    boot of a round pays. After each counted round listed in LOOKS, STOP(rounds) may end
    the run early (a sequential comparison whose answer is decided). START skips rounds
    that already ran (a resumed run)."""
    fleet = sessions[0].plan.fleet if sessions else None
    if fleet is not None:
        return fleet.interleave(sessions, warmup, n, progress=progress, looks=looks, stop=stop)
    started = time.monotonic()
    total = (warmup + n - start) * len(sessions)
    rng = random.Random(seed)  # warm-up rounds apart, so the counted ones are balanced on their own
    orders = round_orders(len(sessions), warmup, rng) + round_orders(len(sessions), n, rng)
    done = 0
    for index in range(start, warmup + n):
        for position, arm in enumerate(orders[index]):
            sessions[arm].boot(warmup=index < warmup, slot=Slot(index, position))
            done += 1
            if progress is not None:
                progress(done, total, time.monotonic() - started)
        rounds = index + 1 - warmup
        if rounds > 0 and rounds in looks and stop is not None and stop(rounds):
            if progress is not None and done < total:
                progress(done, done, time.monotonic() - started)  # ends the bar's line at what ran
            return rounds
    return n


SAME_HOST = ("cpu_model", "host_kernel", "qemu_version", "cpus")  # what a resumed run must share


def resume(sessions: Sequence[Session], saved: Sequence[dict[str, Any]], path: Path, host: dict[str, Any]) -> int:
    """Continue an interrupted run: the boots of SAVED (its run sets, one per session, in
    order) loaded into SESSIONS; return how many rounds it finished (warm-up included).
    Boots of another build, or (off a cluster) of another host, are refused: results of
    two hosts never mix unless each boot names its worker."""
    for session, side in zip(sessions, saved, strict=True):
        if side["bundle"]["digest"] != session.bundle.digest:
            raise ApplianceError(f"{path} holds boots of another build of {side['bundle']['name']}: "
                                 "start afresh with another -o")
        earlier = side["host"]
        if not side.get("fleet") and session.plan.fleet is None and any(
                earlier.get(k) != host.get(k) for k in SAME_HOST):
            raise ApplianceError(f"{path} was measured on another host ({earlier.get('cpu_model')}, "
                                 f"{earlier.get('host_kernel')}): results of two hosts never mix; start afresh with another -o")
    rounds = min(len(side["runs"]) for side in saved)
    for session, side in zip(sessions, saved, strict=True):
        session.runs = list(side["runs"][:rounds])
        session.consoles = [""] * rounds
        session.exit_probes = side["settings"].get("exit_probes")
        session.fleet = dict(side.get("fleet") or {})
    return rounds


def saved_doc(path: Path, kind: str) -> dict[str, Any]:
    """The results file --resume continues, if it is of KIND."""
    if not path.is_file():
        raise ApplianceError(f"--resume: {path} does not exist: nothing to continue (drop --resume)")
    doc = results.read(path)
    if results.kind(doc) != kind:
        raise ApplianceError(f"--resume: {path} holds {results.kind(doc)} results, not {kind}: give its -o")
    if doc.get("complete"):
        raise ApplianceError(f"--resume: {path} is complete: nothing to continue")
    return doc


def run_then_write(sessions: Sequence[Session], warmup: int, n: int, out: Path, *,
                   document: Callable[[bool, int], Mapping[str, Any]], progress: Progress | None = tty_progress,
                   looks: Sequence[int] = (), stop: Callable[[int], bool] | None = None, start: int = 0) -> Any:
    """Interleave SESSIONS (see interleave), then write DOCUMENT(complete, rounds run) to
    OUT and return it: whole, or partial and marked incomplete when a boot failed or the
    user interrupted (what ran is never lost). Every verb that boots arms does this."""
    complete, ran = False, 0
    try:
        ran = interleave(sessions, warmup, n, progress=progress, looks=looks, stop=stop, start=start)
        complete = True
    finally:
        doc = document(complete, ran)
        results.write(out, doc)
    return doc


def bench(bundle: Bundle, *, accel: AccelChoice, plan: Plan, out: Path,
          progress: Progress = tty_progress, resumed: bool = False) -> RunSet:
    """Run WARMUP + N boots; write the results to OUT (partial ones too) and return them.
    RESUMED: OUT holds an interrupted run of the same bundle, which this one continues."""
    host = hostfacts.collect(bundle.arch)
    session = Session(bundle, accel, plan)
    start = resume([session], [saved_doc(out, "bench")], out, host) if resumed else 0
    doc: RunSet = run_then_write([session], plan.warmup, plan.n, out,
                                 document=lambda complete, _: session.document(complete, host), progress=progress, start=start)
    return doc

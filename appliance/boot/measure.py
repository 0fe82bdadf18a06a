"""Measured boots: start QEMU on a bundle, watch the console, turn output into events.

A boot succeeds when QEMU exits as the channel expects (status 0, or the isa-debug-exit
status of the awaited probe), the console shows no kernel panic and the payload (if any)
exited 0. Anything else is a BootError carrying the console's tail.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

from appliance import systemdview
from appliance.boot import qemu, service
from appliance.boot.qemu import BootSpec, Channel
from appliance.boot.serial import ConsoleClock, probe_events, uart_cost_us_per_char
from appliance.boot.tsc import runtime_cmdline
from appliance.bundle import Bundle
from appliance.errors import BootError
from appliance.fsutil import Growing
from appliance.machines import Accel, Arch
from appliance.netspec import Forward
from appliance.phases import EXEC, EXIT, READY, RESUMED, derive
from appliance.probes import PORT_KERNEL, Event, parse_console_probes, parse_trace, unit_probe
from appliance.snapshot import problem as snapshot_problem

_PANIC = re.compile(r"Kernel panic - not syncing:.*|BUG: kernel NULL pointer.*")
_MODULE = re.compile(r"appliance-module: (?P<name>\S+) (?P<start>\d+) (?P<duration>\d+)\s*$", re.M)
_STOPPED = re.compile(r"appliance-init: (stopping: module \S+ did not load|cannot mount root.*|"
                      r"cannot switch to the new root.*|cannot exec the image's init.*|no network interface .*|"
                      r"stopping: network .*)")
_PAYLOAD = re.compile(r"appliance-init: (payload exited with status (\d+)|cannot exec payload.*|payload did not exit normally)")
_SKIPPED = re.compile(r"appliance-init: module (\S+) skipped: (.*)$", re.M)
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z ")  # what -msg timestamp=on puts before errors
TAIL_LINES = 15


@dataclass
class BootRun:
    events: list[Event]
    phases: dict[str, float | None]
    console_probes: list[tuple[str, int]]
    max_rss_kib: int
    payload_status: int | None
    console: str = ""
    qemu_lifetime_ms: float = 0.0  # summed over the boots of this run (several for `exit`)
    uart_us_per_char: float | None = None
    paired_trace_ms: dict[str, float] = field(default_factory=dict)  # exit boots traced too: probe -> ms
    modules: list[tuple[str, int, int]] = field(default_factory=list)  # (name, start ns, duration ns), guest clock
    warnings: list[str] = field(default_factory=list)
    guest_log: str = ""  # profiled's raw records (JSON lines), when the bundle runs it
    qemu_cpu_s: float = 0.0  # QEMU's CPU time, summed like qemu_lifetime_ms
    stopped_ms: float = 0.0  # time QEMU was seen stopped (SIGSTOP): the boot was disturbed
    forwards: list[str] = field(default_factory=list)  # a service's forwards in this boot
    restored: bool = False  # started from a snapshot's state, not booted
    instructions: dict[str, int] = field(default_factory=dict)  # event -> guest instructions before it (--clock)
    vcpu_instructions: list[int] = field(default_factory=list)  # per vCPU, at QEMU's exit
    samples: dict[int, int] = field(default_factory=dict)  # guest PC -> hits (the plugin's sampling)
    systemd: systemdview.View | None = None  # an image's own init: systemd's view of the boot


@dataclass
class RawBoot:
    done: qemu.Exit
    console: str
    trace: str
    lines: list[tuple[int, str]]  # (host arrival ns, line), serial and perf channels
    argv: list[str]
    perf_data: Path
    profiled: str = ""  # profiled's records, for bundles that run it
    ready_ns: int = 0  # a service's first answer (host clock)
    forwards: list[str] = field(default_factory=list)  # where the host reached the guest, this boot
    warnings: list[str] = field(default_factory=list)
    resumed_ns: int = 0  # a restore: when the guest ran again (QMP's RESUME, host clock)
    insns: str = ""  # the instruction clock's report


class ConsoleWatch:
    """Follows a console log file while QEMU runs, optionally echoing it to a stream."""

    def __init__(self, path: Path, echo: IO[str] | None) -> None:
        self.log = Growing(path)
        self.echo = echo

    def poll(self) -> None:
        if self.echo is None:
            return
        chunk = self.log.read()
        if chunk:
            self.echo.write(chunk.decode(errors="replace"))
            self.echo.flush()


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def check_console(console: str) -> int | None:
    """Raise on a panic or a failed payload; return the payload's exit status if any."""
    panic = _PANIC.search(console)
    if panic:
        raise BootError(f"kernel panic: {panic.group(0).strip()}", tail(console))
    stopped = _STOPPED.search(console)
    if stopped:
        raise BootError(f"init stopped: {stopped.group(1).strip()}", tail(console))
    payload = _PAYLOAD.search(console)
    if payload is None:
        return None
    if payload.group(2) is None:
        raise BootError(f"payload failed: {payload.group(1)}", tail(console))
    status = int(payload.group(2))
    if status != 0:
        raise BootError(f"payload exited with status {status}", tail(console))
    return status


@contextlib.contextmanager
def _workdir(prefix: str) -> Iterator[str]:
    """A boot's temporary folder (console, trace); a file error in it (a full disk) is
    this boot's failure, said in one line, not a crash of the whole run set."""
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield tmp
    except OSError as exc:
        where = exc.filename or tempfile.gettempdir()
        raise BootError(f"the boot's temporary files failed: {exc.strerror or exc} ({where}); "
                        f"free space in {tempfile.gettempdir()} or set TMPDIR") from None


FULL_BYTES = 1 << 20  # a boot's folder with less free space than this may have lost its logs' ends


def _full(folder: Path) -> bool:
    """Whether FOLDER's filesystem has no room left for a boot's logs."""
    try:
        return shutil.disk_usage(folder).free < FULL_BYTES
    except OSError:
        return False


INIT_PROBES = ("init_start", "init_modules_loaded", "init_root_mounted", "init_net_up", "payload_start", "payload_end")


def lost_data(work: Path, console_probes: list[tuple[str, int]], events: list[Event], channel: Channel) -> str | None:
    """Why this boot's measurement cannot be trusted, or None: its folder filled up (QEMU
    writes the console and trace there and says nothing when a write fails), or the
    trace lacks one of the init's probes that the console shows after one it has (its
    end was cut off). Only the init's: a payload prints its probe lines even when its
    own port access failed, the init's port access holds for its whole life."""
    if _full(work):
        return (f"the boot's temporary folder {work} ran out of space ({shutil.disk_usage(work).free} bytes free): "
                f"QEMU's console and trace may be cut short; free space in {tempfile.gettempdir()} or set TMPDIR")
    if channel is not Channel.TRACE:
        return None
    traced = {e.name for e in events}
    shown = list(dict.fromkeys(name for name, _ in console_probes if name in INIT_PROBES))
    if any(name in traced for name in shown):  # the trace saw the guest's probes: it must see all of them
        missing = [name for name in shown if name not in traced]
        if missing:
            return (f"QEMU's trace lacks probes the guest's console shows ({', '.join(missing)}): the trace was cut "
                    "short; is its disk full?")
    return None


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


STOP_GRACE_S = 10.0  # how long a service guest may take to power off once asked
START_RETRIES = 3  # QEMU starts again with other picked ports if one was taken meanwhile


@dataclass
class _Service:
    """One boot's service state: the forwards' ports, the stop channel, the readiness check."""

    ports: dict[Forward, int]
    control: service.Control | None
    waiter: service.AnswerWaiter | service.ProbeWaiter | None = None
    thread: threading.Thread | None = None
    stop_sent_at: float = 0.0
    acknowledged: bool = False  # the guest's init answered the stop request
    warnings: list[str] = field(default_factory=list)

    @property
    def ready_ns(self) -> int:
        return self.waiter.ready_ns if self.waiter is not None else 0

    def start(self, bundle: Bundle, files: qemu.BootFiles, holding: bool, restored: bool = False) -> None:
        """Start the readiness check (the guest is stopped at its answer unless HOLDING:
        `run --serve` keeps it)."""
        ready = bundle.ready
        if ready is None:
            return
        # our init announces its network on the console; a restored guest's network is up already
        console = files.console if emits_init_start(bundle) and not restored else None
        self.waiter = service.waiter_for(ready, bundle.forwards or (), self.ports, send=bundle.send, trace=files.trace,
                                         table=bundle.probe_table, console=console)
        if isinstance(self.waiter, service.AnswerWaiter):
            waiter = self.waiter

            def check() -> None:
                waiter.run()
                if waiter.ready_ns and not holding:
                    self.stop()

            self.thread = threading.Thread(target=check, daemon=True)
            self.thread.start()

    def tick(self, holding: bool) -> None:
        if isinstance(self.waiter, service.ProbeWaiter):
            self.waiter.poll()
            if self.waiter.ready_ns and not holding:
                self.stop()

    def stop(self) -> None:
        """Ask the guest to power off (once)."""
        if self.stop_sent_at or self.control is None:
            return
        self.stop_sent_at = time.monotonic()
        self.acknowledged = self.control.stop_guest()
        if not self.acknowledged:
            self.warnings.append("the guest's init did not take the stop request")

    def end(self) -> None:
        if isinstance(self.waiter, service.AnswerWaiter):
            self.waiter.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def deadline(self, limit: float) -> float:
        return min(limit, self.stop_sent_at + STOP_GRACE_S) if self.stop_sent_at else limit


def _not_ready(bundle: Bundle, svc: _Service, console: str, timeout: float | None) -> BootError:
    """Why a service boot ended without an answer: the guest's own failure if it shows
    one (a panic, a failed network, a service that exited), else the time limit."""
    check_console(console)
    ready = bundle.ready
    assert ready is not None
    answered = ""
    if isinstance(svc.waiter, service.AnswerWaiter) and svc.waiter.last_status is not None:
        answered = f" (its last answer was HTTP {svc.waiter.last_status})"
    if timeout is None:
        exited = _PAYLOAD.search(console)
        how = f": {exited.group(1)}" if exited else ""
        return BootError(f"the service ended before it answered {ready.spec()}{how}{answered}", tail(console))
    return BootError(f"the service did not answer {ready.spec()} within {timeout:g} s{answered}; QEMU was killed",
                     tail(console))


def _hung(bundle: Bundle, svc: _Service, console: str, timeout: float) -> BootError:
    """Why a boot that QEMU did not end in time failed."""
    if svc.stop_sent_at:
        return BootError(f"the guest did not power off within {STOP_GRACE_S:g} s of the host's stop request; "
                         "QEMU was killed", tail(console))
    if bundle.ready is not None and not svc.ready_ns:
        return _not_ready(bundle, svc, console, timeout)
    check_console(console)  # a panic that ended in a hang says more than "timeout"
    if bundle.image_init:
        return BootError(never_finished(bundle, console, timeout), tail(console))
    return BootError(f"guest did not finish within {timeout:g} s (hang?); QEMU was killed", tail(console))


def never_finished(bundle: Bundle, console: str, timeout: float) -> str:
    """Why an image's own init did not end its boot in time: the last probe it reached
    and what systemd said it was waiting for."""
    reached = [name for name, _ in parse_console_probes(console)]
    waiting = systemdview.waiting_for(console)
    return (f"systemd did not finish the boot within {timeout:g} s; QEMU was killed; its last probe: "
            f"{reached[-1] if reached else 'none'}"
            + (f"; {waiting}" if waiting else
               " (systemd.show_status=true on the kernel command line names the units it starts)"))


def systemd_view(bundle: Bundle, console: str, console_probes: list[tuple[str, int]]) -> systemdview.View:
    """systemd's report of the boot; a named unit ([image] units) whose probe never fired
    (it failed, or is not there) is the boot's failure, another failed unit a warning of
    the caller's."""
    view = systemdview.read(console)
    if view is None:
        raise BootError("the image's boot ended without systemd's report (appliance-report.service): did something "
                        "power the guest off first?", tail(console))
    fired = {name for name, _ in console_probes}
    unstarted = [unit for unit in bundle.image_units if unit_probe(unit) not in fired]
    if unstarted:
        failed = f"systemctl --failed: {', '.join(view['failed'])}" if view["failed"] else "no unit failed"
        raise BootError(f"unit {unstarted[0]} never started in the image's boot: it failed, or the image has no such "
                        f"unit ({failed}; systemd's state: {view['state']})", tail(console))
    return view


def _run(spec: BootSpec, work: Path, echo: IO[str] | None, hold: Callable[[list[str]], None] | None = None
         ) -> RawBoot:
    """Start QEMU, wait for it within the spec's timeout, and collect what it left behind.
    A service bundle's guest is asked to power off at its first answer; with HOLD,
    HOLD(forwards) is called instead and the runner waits until QEMU ends (or Ctrl-C)."""
    for attempt in range(START_RETRIES):
        raw = _run_once(spec, work, echo, hold)
        picked = any(f.host_port == 0 for f in qemu.forwards(spec.bundle))
        if raw.done.returncode == 0 or service.FORWARD_FAILED not in raw.done.stderr:
            return raw
        if not picked or attempt == START_RETRIES - 1:
            last = _STAMP.sub("", raw.done.stderr.strip().splitlines()[-1])
            raise BootError(f"QEMU could not set up a port forward: {last}: a host port is in use; "
                            "free it, or use host port 0 in [network] forward")
        for leftover in work.iterdir():
            if leftover.is_file():
                leftover.unlink()
    raise AssertionError("unreachable")


def _run_once(spec: BootSpec, work: Path, echo: IO[str] | None, hold: Callable[[list[str]], None] | None) -> RawBoot:
    """One start of QEMU for SPEC: launched, waited for (held with HOLD), collected."""
    files = _boot_files(spec, work)
    spec = _with_runtime_words(spec)
    svc = _service_of(spec.bundle)
    argv = qemu.argv(spec, files, host_ports=svc.ports)
    piped = spec.channel in (Channel.SERIAL, Channel.PERF)
    watch = ConsoleWatch(files.console, None if piped else echo)
    holder = _Holder(hold, spec.bundle, svc)
    limit = time.monotonic() + spec.timeout
    clock = None
    try:
        with qemu.Qemu(argv, work / "qemu.stderr", stdout_pipe=piped) as vm:
            reader = None
            if piped:
                assert vm.stdout is not None
                clock = ConsoleClock(vm.stdout.fileno(), files.console, echo)
                reader = threading.Thread(target=clock.run, daemon=True)
                reader.start()
            resumed_ns = _restored(vm, files, spec.restore.state, limit) if spec.restore is not None else 0
            svc.start(spec.bundle, files, holder.holding, restored=spec.restore is not None)
            done, interrupted = _wait(vm, spec, svc, watch, holder=holder, files=files, limit=limit)
            if reader is not None:
                reader.join(timeout=5)
    finally:
        svc.end()
        if files.qmp is not None and files.qmp.parent != work:  # socket_path's short folder: ours to remove
            shutil.rmtree(files.qmp.parent, ignore_errors=True)
    watch.poll()
    if not piped and not files.console.exists():
        raise BootError(f"the console log {files.console} disappeared during the boot (removed by another "
                        "program?): the guest's result is unknown")
    raw = RawBoot(done, _read(files.console), _read(files.trace), clock.lines if clock else [], argv, files.perf,
                  _read(files.profiled) if files.profiled else "", resumed_ns=resumed_ns,
                  insns=_read(files.insns) if files.insns else "", warnings=svc.warnings)
    if spec.bundle.ready is not None and done.returncode == 0 and not interrupted:
        if not svc.ready_ns:
            raise _not_ready(spec.bundle, svc, raw.console, None)
        raw.ready_ns = svc.ready_ns
        raw.forwards = service.describe(spec.bundle.forwards or (), svc.ports)
    return raw


def _boot_files(spec: BootSpec, work: Path) -> qemu.BootFiles:
    """Where this boot's outputs go, in WORK (the QMP socket only for a restore, the
    instruction report only on a counting clock)."""
    return qemu.BootFiles(work / "console.log", work / "trace.log", work / "perf.data", work / "profiled.jsonl",
                          socket_path(work, "qmp.sock") if spec.restore is not None else None,
                          work / "insns.txt" if spec.clock.counts else None)


def _with_runtime_words(spec: BootSpec) -> BootSpec:
    """SPEC with the runner's own kernel words for its accelerator and clock first, the
    boot's after them; a bundle KVM cannot run here is refused."""
    arch = spec.bundle.arch
    if spec.accel is Accel.KVM and arch.value != platform.machine():
        raise BootError(f"KVM cannot run this {arch.value} bundle on a {platform.machine()} host: use --accel tcg")
    words = (runtime_cmdline(spec.accel, arch, spec.clock), spec.extra_cmdline)
    return replace(spec, extra_cmdline=" ".join(filter(None, words)))


def _service_of(bundle: Bundle) -> _Service:
    """The boot's ports, and its stop channel where the guest has one: a networked
    bundle with our init (an image's own init ends the boot itself, after its report)."""
    ports = service.host_ports(qemu.forwards(bundle))
    control = qemu.CONTROL
    stoppable = bundle.forwards is not None and not bundle.image_init
    return _Service(ports, service.Control((control.host_address, ports[control])) if stoppable else None)


@dataclass
class _Holder:
    """`run --serve`: once the service answers (or at once without one), CALLBACK gets the
    forwards and the boot is held, without a deadline, until the guest powers off."""

    callback: Callable[[list[str]], None] | None
    bundle: Bundle
    svc: _Service
    held: bool = False

    @property
    def holding(self) -> bool:
        return self.callback is not None

    def tick(self) -> None:
        if self.callback is None or self.held:
            return
        if self.svc.ready_ns or self.bundle.ready is None:
            self.held = True
            self.callback(service.describe(self.bundle.forwards or (), self.svc.ports))

    def deadline(self, limit: float) -> float:
        return float("inf") if self.held else self.svc.deadline(limit)


def _wait(vm: qemu.Qemu, spec: BootSpec, svc: _Service, watch: ConsoleWatch, *, holder: _Holder,
          files: qemu.BootFiles, limit: float) -> tuple[qemu.Exit, bool]:
    """QEMU's end, and whether a Ctrl-C of `--serve` powered the guest off. A boot past
    its deadline is killed and explained; a service that took the stop request and then
    hangs in its power-off is ended and warned about (it was measured)."""

    def tick() -> None:
        watch.poll()
        svc.tick(holder.holding)
        holder.tick()

    try:
        return vm.wait(lambda: holder.deadline(limit), on_tick=tick), False
    except KeyboardInterrupt:
        if not holder.holding or svc.control is None:
            raise
        return _serve_interrupted(vm, svc, watch), True
    except BootError:
        if svc.stop_sent_at and svc.ready_ns and svc.acknowledged:
            # measured, and the guest took the stop: a power-off that hangs (seen rarely
            # under TCG) is the teardown's failure, not the boot's
            svc.warnings.append(f"the guest did not power off within {STOP_GRACE_S:g} s of taking the "
                                "stop request; QEMU was ended with SIGTERM")
            return replace(vm.stop(STOP_GRACE_S), returncode=0), False
        vm.kill()
        raise _hung(spec.bundle, svc, _read(files.console), spec.timeout) from None


def _serve_interrupted(vm: qemu.Qemu, svc: _Service, watch: ConsoleWatch) -> qemu.Exit:
    """Ctrl-C on `--serve`: ask the guest to power off and wait for it (an init that does
    not listen yet, an early Ctrl-C, ends QEMU as for a boot)."""
    svc.stop()
    if not svc.acknowledged:
        raise KeyboardInterrupt
    try:
        return vm.wait(time.monotonic() + STOP_GRACE_S, on_tick=watch.poll)
    except BootError:
        raise BootError(f"the guest did not power off within {STOP_GRACE_S:g} s of the stop request; "
                        "QEMU was killed") from None


def socket_path(work: Path, name: str) -> Path:
    """A UNIX socket's path in WORK, or in a short folder when WORK's path is too long
    for one (108 bytes): the caller removes that folder (its parent) when done."""
    path = work / name
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="appliance-sock-", dir="/tmp")) / name


def _restored(vm: qemu.Qemu, files: qemu.BootFiles, state: Path, limit: float) -> int:
    """Hand QEMU the snapshot's state as an open descriptor (no shell sees its path),
    wait until it is loaded, continue the guest, and return when it ran again (QMP's
    RESUME event, on the host clock)."""
    from appliance.boot.qmp import STATE_FD, Monitor

    assert files.qmp is not None
    monitor = Monitor(files.qmp, vm, limit)
    try:
        fd = os.open(state, os.O_RDONLY | os.O_CLOEXEC)
        try:
            monitor.pass_file(fd, STATE_FD)
        finally:
            os.close(fd)
        monitor.command("migrate-incoming", uri=f"fd:{STATE_FD}")
        monitor.migration(limit)
        return monitor.resumed_ns(limit)
    finally:
        monitor.close()


def _failed_start(raw: RawBoot) -> BootError:
    if raw.done.returncode < 0:  # a signal from outside: not QEMU's own failure
        name = signal.Signals(-raw.done.returncode).name
        return BootError(f"QEMU was killed by {name} from outside the runner during the boot", tail(raw.console))
    last = _STAMP.sub("", (raw.done.stderr.strip().splitlines() or ["no output"])[-1])
    if "-plugin" in raw.argv and ("plugin" in last.lower() or "invalid option" in last):
        return BootError(f"QEMU could not load the instruction clock's plugin ({last}): this QEMU may be built "
                         "without TCG plugin support; use --clock wall, or Debian's qemu-system-x86")
    return BootError(f"QEMU exited with status {raw.done.returncode}: {last}\n  command: {' '.join(raw.argv)}",
                     tail(raw.console))


def _events(raw: RawBoot, bundle: Bundle, channel: Channel, work: Path | None = None) -> list[Event]:
    restored = raw.resumed_ns != 0  # no firmware ran: nothing to infer its phases from
    if channel is Channel.TRACE:
        if "memory_region_ops_write" not in raw.trace and work is not None and _full(work):
            raise BootError(f"the boot's temporary folder {work} is full ({shutil.disk_usage(work).free} bytes free): "
                            f"QEMU could not write its trace; free space in {tempfile.gettempdir()} or set TMPDIR")
        if "memory_region_ops_write" not in raw.trace:
            raise BootError("QEMU wrote no trace events: it needs the 'log' trace backend "
                            "(Debian's qemu-system-x86 has it)")
        return parse_trace(raw.trace, bundle.probe_table, firmware=bundle.arch is Arch.X86_64, infer=not restored)
    if channel is Channel.SERIAL:
        return probe_events(raw.lines)
    from appliance.boot.perf import parse_perf_script  # only reached where perf and KVM exist

    return parse_perf_script(raw.perf_data, bundle.probe_table)


def refuse_shell(bundle: Bundle) -> None:
    """A bundle whose init ends in an interactive shell waits at its prompt for a person:
    booted without a terminal it would only end at the time limit, as a hang."""
    if bundle.shell:
        raise BootError(f"bundle {bundle.path} runs an interactive shell ({' '.join(bundle.shell)}) on its console after "
                        f"its payload: boot it with `appliance run {bundle.path} --interactive`; measuring needs an "
                        "appliance whose payload ends the boot")


def check_restore(spec: BootSpec) -> None:
    """A restore only of a snapshot of this bundle, taken by a QEMU like this one, and
    not through the exit channel (it ends QEMU at a probe the restored guest has passed)."""
    if spec.restore is None:
        return
    if spec.channel is Channel.EXIT:
        raise BootError("--restore starts a guest past its probes: the exit channel (a boot per probe) cannot measure "
                        "it; use --channel trace or serial")
    why = snapshot_problem(spec.restore, spec.bundle.digest, spec.vm())
    if why:
        raise BootError(f"snapshot {spec.restore.path} cannot be restored here: {why}")


def boot(spec: BootSpec, echo: IO[str] | None = None, keep_dir: Path | None = None) -> BootRun:
    """Boot SPEC's bundle once, measured through its channel (not `exit`: see boot_exit);
    with SPEC's restore, start it from the snapshot's state instead."""
    bundle, channel = spec.bundle, spec.channel
    refuse_shell(bundle)
    check_restore(spec)
    if channel is Channel.EXIT:
        raise ValueError("the exit channel needs one boot per probe: use boot_exit()")
    with _workdir("appliance-boot-") as tmp:
        work = keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        raw = _run(spec, work, echo)
        if raw.done.returncode != 0:
            raise _failed_start(raw)
        payload_status = check_console(raw.console)
        events = _events(raw, bundle, channel, work)
        console_probes = parse_console_probes(raw.console)
        lost = lost_data(work, console_probes, events, channel)
        if lost:
            raise BootError(f"the measurement lost its data: {lost}", tail(raw.console))
    done = raw.done
    ready = [Event(READY, raw.ready_ns, "host")] if raw.ready_ns else []
    resumed = [Event(RESUMED, raw.resumed_ns, "qmp")] if raw.resumed_ns else []
    events = [Event(EXEC, done.exec_ns, "host"), *resumed, *events, *ready, Event(EXIT, done.exit_ns, "host")]
    if ready or resumed:  # in time order among the probes
        events.sort(key=lambda e: e.host_time_ns)
    view = systemd_view(bundle, raw.console, console_probes) if bundle.image_init else None
    run = BootRun(events=events, phases=derive(events), console_probes=console_probes,
                  max_rss_kib=done.max_rss_kib, payload_status=payload_status, console=raw.console,
                  qemu_lifetime_ms=(done.exit_ns - done.exec_ns) / 1e6,
                  uart_us_per_char=uart_cost_us_per_char(raw.lines) if raw.lines else None,
                  # a service's forwards (phases.of_run leaves its payload out: it ran until stopped)
                  forwards=raw.forwards if bundle.ready is not None else [],
                  warnings=[*raw.warnings, *_boot_warnings(bundle, raw, view)], qemu_cpu_s=done.cpu_s,
                  stopped_ms=done.stopped_ms, guest_log=raw.profiled, restored=bool(resumed),
                  modules=[(m["name"], int(m["start"]), int(m["duration"])) for m in _MODULE.finditer(raw.console)],
                  systemd=view)
    if spec.clock.counts:
        _count_instructions(run, raw, spec)
    if not any(e.name == "init_start" for e in events) and not resumed:  # a restore starts past the init's start
        if emits_init_start(bundle) and not any(name == "init_start" for name, _ in run.console_probes):
            raise BootError("the boot ended without init_start: the kernel never ran the init (a damaged or "
                            "wrong kernel or initrd?); rebuild the bundle", tail(raw.console))
        run.warnings.append("no init_start probe: the init never ran, or could not reach port 0xf4")
    return run


def _boot_warnings(bundle: Bundle, raw: RawBoot, view: systemdview.View | None) -> list[str]:
    """What the boot's console and channels say that the figures do not: profiled silent,
    modules skipped, units of an image's own boot that failed (VIEW: systemd's report)."""
    warnings = []
    if bundle.profiled is not None and not raw.profiled:
        warnings.append("profiled sent nothing: is its channel's device in the kernel (ttyS1, virtio_console)?")
    warnings += [f"module {m[1]} skipped: {m[2]}" for m in _SKIPPED.finditer(raw.console)]
    warnings += [f"unit {unit} failed in the image's boot" for unit in (view["failed"] if view else [])]
    return warnings


def _count_instructions(run: BootRun, raw: RawBoot, spec: BootSpec) -> None:
    """RUN's events' instruction counts from the plugin's report of the same boot."""
    from appliance.boot import insnclock

    if spec.accel is Accel.KVM:  # perf stat's count of the whole run (insnclock.PERF_STAT)
        total = insnclock.parse_perf_stat(raw.insns)
        if total is None:
            raise BootError("perf counted no guest instructions (instructions:G not supported on this host's PMU, "
                            "or perf not allowed: kernel.perf_event_paranoid): use --clock wall or --accel tcg")
        run.instructions = {EXEC: 0, EXIT: total}
        return
    report = insnclock.parse(raw.insns)
    if report.vcpus == 0:
        raise BootError("the instruction clock's plugin wrote nothing: QEMU loaded it but it did not start "
                        f"(QEMU said: {_STAMP.sub('', (raw.done.stderr.strip().splitlines() or ['nothing'])[-1])})")
    counted, warning = insnclock.counts(run.events, report)
    if warning:
        run.warnings.append(warning)
    run.instructions = counted
    run.vcpu_instructions = [report.totals[v] for v in sorted(report.totals)]
    run.samples = report.samples


def serve(spec: BootSpec, echo: IO[str] | None, announce: Callable[[list[str]], None]) -> int:
    """Boot BUNDLE and keep it running: ANNOUNCE(forwards) once its service answers (or
    at once without [service]), then wait until the guest powers off or Ctrl-C, which
    asks the guest to power off through its stop channel (a Ctrl-C before the init
    listens ends QEMU instead). TIMEOUT applies until the service is ready. The
    console is timed by arrival (no QEMU trace, which would grow for the whole session)
    unless the service's readiness is a probe."""
    bundle = spec.bundle
    if bundle.forwards is None:
        raise BootError(f"bundle {bundle.path} has no [network]: there is nothing to serve; "
                        "add [network] (and [service]) to its template")
    ready = bundle.ready
    channel = Channel.TRACE if ready is not None and ready.kind == "probe" else Channel.SERIAL
    with _workdir("appliance-serve-") as tmp:
        raw = _run(replace(spec, channel=channel), Path(tmp), echo, hold=announce)
        if raw.done.returncode != 0:
            raise _failed_start(raw)
        check_console(raw.console)
    return 0


def emits_init_start(bundle: Bundle) -> bool:
    """Whether BUNDLE's init is ours (it always emits init_start), from how it was built."""
    return bundle.has_our_init


def boot_exit(spec: BootSpec, probes: list[str]) -> BootRun:
    """The exit channel (NEMU's method): one boot per probe, each ended by that probe.

    A probe's time is the QEMU process lifetime from exec to the exit it caused, so the
    events of one run come from different boots, placed on the first boot's exec time.
    PAIRED_TRACE also traces each boot, giving the same probe's trace time in the same
    boot: the only comparison of the two channels free of boot-to-boot variation (SPEC's
    `trace`)."""
    bundle, paired_trace = spec.bundle, spec.trace
    refuse_shell(bundle)
    if bundle.ready is not None:
        raise BootError("the exit channel ends QEMU at a probe, before a service answers: "
                        "time a service with --channel trace or serial")
    codes = {name: code for (port, code), name in bundle.probe_table.items() if port == PORT_KERNEL}
    events: list[Event] = []
    base = lifetime = 0.0
    rss = 0
    cpu = 0.0
    warnings = []
    paired: dict[str, float] = {}
    for name in probes:
        with _workdir("appliance-exit-") as tmp:
            raw = _run(replace(spec, channel=Channel.EXIT, exit_probe=name), Path(tmp), None)
        done = raw.done
        traced = [e for e in parse_trace(raw.trace, bundle.probe_table) if e.name == name] if paired_trace else []
        if traced:
            paired[name] = (traced[0].host_time_ns - done.exec_ns) / 1e6
        check_console(raw.console)
        base = base or done.exec_ns
        lifetime += (done.exit_ns - done.exec_ns) / 1e6
        rss = max(rss, done.max_rss_kib)
        cpu += done.cpu_s
        if done.returncode == (codes[name] << 1) | 1:
            events.append(Event(name, int(base + done.exit_ns - done.exec_ns), "exit"))
        elif done.returncode == 0:
            warnings.append(f"probe {name} never fired: the guest finished without it")
        else:
            raise _failed_start(raw)
    events = [Event(EXEC, int(base), "host"), *sorted(events, key=lambda e: e.host_time_ns)]
    return BootRun(events=events, phases=derive(events, anchored_only=True), console_probes=[], max_rss_kib=rss,
                   payload_status=None, qemu_lifetime_ms=lifetime, paired_trace_ms=paired, warnings=warnings,
                   qemu_cpu_s=cpu)


def discover_probes(spec: BootSpec) -> list[str]:
    """The probes on port 0xf4 a bundle emits, in order, from one traced boot: the
    init's and the payload's, and the patched kernel's (which print no console line)."""
    bundle = spec.bundle
    run = boot(replace(spec, channel=Channel.TRACE, trace=False, exit_probe=None))
    kernel_port = {name for (port, _), name in bundle.probe_table.items() if port == PORT_KERNEL}
    return list(dict.fromkeys(e.name for e in run.events if e.source == "trace" and e.name in kernel_port))

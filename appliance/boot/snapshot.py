"""Taking a snapshot: boot a bundle, wait for the point (payload_start, service_ready or
probe:NAME), stop the guest and save its whole state through QMP, into a snapshot folder
that appears in one rename once whole (appliance/snapshot.py owns its manifest)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from appliance import snapshot
from appliance.boot import qemu, service
from appliance.boot.measure import check_console, refuse_shell, socket_path, tail
from appliance.boot.qemu import BootSpec, Channel
from appliance.boot.qmp import STATE_FD, Monitor
from appliance.boot.tsc import runtime_cmdline
from appliance.errors import BootError
from appliance.fsutil import Growing
from appliance.netspec import Forward
from appliance.probes import parse_trace


def _point_probe(point: str, spec: BootSpec) -> str | None:
    """The probe a point waits for, or None for service_ready; a bad point is one line."""
    if point == "service_ready":
        if spec.bundle.ready is None:
            raise BootError(f"bundle {spec.bundle.path} has no [service]: there is no service_ready to snapshot at; "
                            "use --at payload_start")
        return None
    name = point.removeprefix("probe:")
    if name not in spec.bundle.probe_table.values():
        raise BootError(f"--at {point}: the bundle has no probe {name!r} (it has: "
                        f"{', '.join(sorted(set(spec.bundle.probe_table.values())))})")
    return name


def take(spec: BootSpec, point: str, out: Path) -> snapshot.Snapshot:
    """Boot SPEC's bundle, stop it at POINT and save its state into OUT."""
    refuse_shell(spec.bundle)
    if out.exists():
        raise BootError(f"{out} exists: remove it or give another -o")
    probe = _point_probe(point, spec)
    bundle = spec.bundle
    spec = replace(spec, channel=Channel.TRACE, restore=None,
                   extra_cmdline=" ".join(filter(None, (runtime_cmdline(spec.accel, bundle.arch), spec.extra_cmdline))))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        with tempfile.TemporaryDirectory(prefix="appliance-snapshot-") as tmp:
            work = Path(tmp)
            files = qemu.BootFiles(work / "console.log", work / "trace.log", work / "perf.data", None,
                                   socket_path(work, "qmp.sock"))
            ports = service.host_ports(qemu.forwards(bundle))
            argv = qemu.argv(spec, files, host_ports=ports)
            limit = time.monotonic() + spec.timeout
            with qemu.Qemu(argv, work / "qemu.stderr") as vm:
                assert files.qmp is not None
                monitor = Monitor(files.qmp, vm, limit)
                try:
                    waited_ms = _wait_for_point(vm, spec, files, probe, ports, limit)
                    monitor.command("stop")
                    _save_state(monitor, staging / snapshot.STATE, limit)
                    monitor.command("quit")
                finally:
                    monitor.close()
                vm.wait(time.monotonic() + 30)
        facts = {"path": str(bundle.path), "name": bundle.name, "digest": bundle.digest,
                 "kernel_release": bundle.kernel_release}
        snapshot.write(staging, bundle=facts, point=point, vm=spec.vm(), taken_ms=waited_ms)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return snapshot.load(out)


def _save_state(monitor: Monitor, path: Path, limit: float) -> None:
    """Migrate the stopped guest into PATH through a descriptor we opened (no shell sees
    the path: any name works, and none runs)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        monitor.pass_file(fd, STATE_FD)
    finally:
        os.close(fd)  # QEMU holds its own copy now
    monitor.command("migrate", uri=f"fd:{STATE_FD}")
    monitor.migration(limit)


def _wait_for_point(vm: qemu.Qemu, spec: BootSpec, files: qemu.BootFiles, probe: str | None,
                    ports: dict[Forward, int], limit: float) -> float:
    """Wait until the guest reaches the point: its probe in QEMU's trace, or its
    service's first answer; return how long that took from QEMU's start (ms)."""
    bundle = spec.bundle
    if probe is None:
        ready = bundle.ready
        assert ready is not None
        waiter = service.waiter_for(ready, bundle.forwards or (), ports, send=bundle.send, trace=files.trace,
                                    table=bundle.probe_table, console=files.console)
        if isinstance(waiter, service.AnswerWaiter):
            thread = threading.Thread(target=waiter.run, daemon=True)
            thread.start()
        while not waiter.ready_ns:
            if isinstance(waiter, service.ProbeWaiter):
                waiter.poll()
            _alive(vm, files, limit)
            time.sleep(0.005)
        if isinstance(waiter, service.AnswerWaiter):
            waiter.stop.set()
        return (waiter.ready_ns - vm.exec_ns) / 1e6
    trace, text = Growing(files.trace), ""
    while True:
        text += trace.read().decode(errors="replace")
        found = [e for e in parse_trace(text, bundle.probe_table, firmware=False) if e.name == probe]
        if found:
            return (found[0].host_time_ns - vm.exec_ns) / 1e6
        _alive(vm, files, limit)
        time.sleep(0.005)


def _alive(vm: qemu.Qemu, files: qemu.BootFiles, limit: float) -> None:
    """Raise when the guest ended (or failed) before the point, or the time is up."""
    console = files.console.read_text(errors="replace") if files.console.exists() else ""
    assert vm.child is not None
    if vm.child.poll() is not None:
        check_console(console)
        raise BootError("the guest ended before it reached the snapshot's point", tail(console))
    if time.monotonic() > limit:
        check_console(console)
        raise BootError("the guest did not reach the snapshot's point in time; QEMU was killed", tail(console))

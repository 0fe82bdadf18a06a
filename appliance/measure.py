"""One measured boot: start QEMU on a bundle, watch the console, turn output into events.

A boot succeeds when QEMU exits by itself with status 0, the console shows no kernel
panic and the payload (if any) exited 0. Anything else is a BootError carrying the
console's tail, so the user sees what the guest last said.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from . import qemu
from .bundle import Bundle
from .errors import BootError
from .phases import EXEC, EXIT, derive
from .probes import Event, parse_console_probes, parse_trace

_PANIC = re.compile(r"Kernel panic - not syncing:.*|BUG: kernel NULL pointer.*")
_PAYLOAD = re.compile(r"appliance-init: (payload exited with status (\d+)|cannot exec payload.*|payload did not exit normally)")
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
    warnings: list[str] = field(default_factory=list)


class ConsoleWatch:
    """Follows the console log while QEMU runs, optionally echoing it to a stream."""

    def __init__(self, path: Path, echo: IO[str] | None) -> None:
        self.path = path
        self.echo = echo
        self.offset = 0

    def poll(self) -> None:
        if self.echo is None or not self.path.exists():
            return
        with open(self.path, "rb") as src:
            src.seek(self.offset)
            chunk = src.read()
        self.offset += len(chunk)
        if chunk:
            self.echo.write(chunk.decode(errors="replace"))
            self.echo.flush()


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _check_console(console: str) -> int | None:
    """Raise on a panic or a failed payload; return the payload's exit status if any."""
    panic = _PANIC.search(console)
    if panic:
        raise BootError(f"kernel panic: {panic.group(0).strip()}", tail(console))
    payload = _PAYLOAD.search(console)
    if payload is None:
        return None
    if payload.group(2) is None:
        raise BootError(f"payload failed: {payload.group(1)}", tail(console))
    status = int(payload.group(2))
    if status != 0:
        raise BootError(f"payload exited with status {status}", tail(console))
    return status


def boot(bundle: Bundle, qemu_path: str, accel: str, timeout: float,
         echo: IO[str] | None = None, keep_dir: Path | None = None) -> BootRun:
    """Boot BUNDLE once and measure it. Raises BootError on any failure."""
    with tempfile.TemporaryDirectory(prefix="appliance-boot-") as tmp:
        work = keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = qemu.BootFiles(work / "console.log", work / "trace.log")
        argv = qemu.argv(qemu_path, bundle, accel, files)
        watch = ConsoleWatch(files.console, echo)
        with qemu.Qemu(argv, work / "qemu.stderr") as vm:
            try:
                done = vm.wait(time.monotonic() + timeout, on_tick=watch.poll)
            except BootError:
                vm.kill()
                console = files.console.read_text(errors="replace") if files.console.exists() else ""
                _check_console(console)  # a panic that ended in a hang says more than "timeout"
                raise BootError(f"guest did not finish within {timeout:g} s (hang?); QEMU was killed",
                                tail(console)) from None
        watch.poll()
        console = files.console.read_text(errors="replace") if files.console.exists() else ""
        if done.returncode != 0:
            last = _STAMP.sub("", (done.stderr.strip().splitlines() or ["no output"])[-1])
            raise BootError(f"QEMU exited with status {done.returncode}: {last}\n  command: {' '.join(argv)}",
                            tail(console))
        payload_status = _check_console(console)
        trace = files.trace.read_text(errors="replace") if files.trace.exists() else ""
        if "memory_region_ops_write" not in trace:
            raise BootError("QEMU wrote no trace events: it needs the 'log' trace backend "
                            "(Debian's qemu-system-x86 has it)")
        events = parse_trace(trace, bundle.probe_table)
    events = [Event(EXEC, done.exec_ns, "host"), *events, Event(EXIT, done.exit_ns, "host")]
    run = BootRun(events, derive(events), parse_console_probes(console), done.max_rss_kib, payload_status, console)
    if not any(e.name == "init_start" for e in events):
        run.warnings.append("no init_start probe: the init never ran, or could not reach port 0xf4")
    return run

"""The serial channel: host arrival times of console lines (boot-analysis style).

QEMU's console goes to its stdout, a pipe; a reader thread stamps each complete line
with CLOCK_REALTIME as it arrives, keeps a copy in the console log, and may echo it.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from pathlib import Path
from typing import IO

from appliance.probes import Event

_PROBE = re.compile(r"appliance-probe: (?P<name>[A-Za-z0-9_]+) \d+\s*$")
_PRINTK = re.compile(r"^\[\s*(?P<sec>\d+)\.(?P<usec>\d{6})\] ")


class ConsoleClock:
    """Reads a console pipe until EOF, stamping each line's arrival."""

    def __init__(self, fd: int, log: Path, echo: IO[str] | None) -> None:
        self.fd = fd
        self.log = log
        self.echo = echo
        self.lines: list[tuple[int, str]] = []

    def run(self) -> None:
        pending = b""
        with open(self.log, "wb") as out:
            while chunk := os.read(self.fd, 65536):
                now = time.time_ns()
                out.write(chunk)
                out.flush()  # others follow the log while the guest runs (a service's network-up line)
                if self.echo is not None:
                    self.echo.write(chunk.decode(errors="replace"))
                    self.echo.flush()
                pending += chunk
                *complete, pending = pending.split(b"\n")
                self.lines += [(now, line.decode(errors="replace").rstrip("\r")) for line in complete]
        if pending:
            self.lines.append((time.time_ns(), pending.decode(errors="replace")))


def probe_events(lines: list[tuple[int, str]]) -> list[Event]:
    """Events at the host arrival time of each `appliance-probe:` line."""
    out = []
    for arrival, line in lines:
        match = _PROBE.search(line)
        if match:
            out.append(Event(match["name"], arrival, "serial"))
    return out


def uart_cost_us_per_char(lines: list[tuple[int, str]]) -> float | None:
    """Estimated console cost per character, from back-to-back kernel messages.

    When the kernel logs faster than the UART drains, consecutive lines arrive one line's
    transmission apart: host gap / characters of the later line is the cost per byte.
    Pairs the guest logged further apart than they arrived are not UART-bound and are
    skipped. None when too few such pairs exist (a `quiet` boot)."""
    stamped = []
    for arrival, line in lines:
        match = _PRINTK.match(line)
        if match:
            stamped.append((arrival, (int(match["sec"]) * 1_000_000 + int(match["usec"])) * 1000, len(line) + 1))
    costs = []
    for (host_a, guest_a, _), (host_b, guest_b, chars) in zip(stamped, stamped[1:], strict=False):
        host_gap = host_b - host_a
        if host_gap > 0 and guest_b - guest_a < host_gap // 4:
            costs.append(host_gap / 1000 / chars)
    return statistics.median(costs) if len(costs) >= 20 else None

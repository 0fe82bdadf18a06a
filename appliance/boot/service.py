"""The host side of a service appliance: its forwarded ports, the readiness check the
host runs, and the stop channel through which the runner asks the guest to power off.

The readiness time is taken on the host clock (CLOCK_REALTIME, like QEMU's trace
timestamps) at the arrival of the first answer: for `tcp`, the first byte back; for
`http`, the status line of a 2xx answer. A connection that QEMU accepts and then closes
(the guest refused it, or is not up yet) is no answer. A connection attempt whose SYN the
guest drops (its interface is not up yet) stalls for seconds in QEMU's user network (it
retransmits the SYN with backoff), so attempts start only once the guest's init says its
network is up (the init_net_up probe line on the console); a guest without our init is
polled from the start. A new attempt also starts whenever the newest one has waited
STALL_S without an answer (a slow service); old ones stay open until ATTEMPT_S.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import BootError
from appliance.fsutil import Growing
from appliance.netspec import Forward, Ready, forward_for, http_request, http_status
from appliance.probes import parse_trace

GAP_S = 0.005  # at least this long between two attempts' starts
STALL_S = 0.1  # start another attempt when the newest one waited this long
ATTEMPT_S = 10.0  # give up on one attempt after this long
MAX_ATTEMPTS = 32  # open at once


def host_ports(forwards: tuple[Forward, ...]) -> dict[Forward, int]:
    """The host port each forward uses in one boot: its own (checked free now, so that a
    port in use is one clear error), or for port 0 a free one picked now. QEMU binds them
    a moment later; if another program takes a picked port in between, QEMU fails to
    start and the runner picks again (start_retries)."""
    chosen: dict[Forward, int] = {}
    for forward in forwards:
        kind = socket.SOCK_STREAM if forward.proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((forward.host_address, forward.host_port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise BootError(f"host port {forward.host_port} of forward {forward.spec()} is in use: stop what "
                                    "holds it, or use host port 0 (a free one is picked at each boot)") from None
                raise BootError(f"forward {forward.spec()}: cannot bind {forward.host_address}:"
                                f"{forward.host_port} on this host ({exc.strerror})") from None
            chosen[forward] = sock.getsockname()[1]
    return chosen


FORWARD_FAILED = "could not set up host forwarding rule"  # QEMU's words when a hostfwd port is taken


def describe(forwards: tuple[Forward, ...], ports: dict[Forward, int]) -> list[str]:
    """One line per forward: where the host reaches the guest."""
    return [f"{f.proto} {f.host_address}:{ports.get(f, f.host_port)} -> guest port {f.guest_port}" for f in forwards]


@dataclass
class _Attempt:
    sock: socket.socket
    started: float
    connected: bool = False
    head: bytes = b""


@dataclass
class AnswerWaiter:
    """Polls a forwarded port until the guest's service answers (a thread's target)."""

    ready: Ready
    address: tuple[str, int]
    send: bytes = b""
    ready_ns: int = 0  # CLOCK_REALTIME of the first answer
    attempts: int = 0
    last_status: int | None = None  # the last non-2xx HTTP status seen, for the error
    stop: threading.Event = field(default_factory=threading.Event)
    gate: Callable[[], bool] | None = None  # attempts start once it says True (the guest's network is up)

    def request(self) -> bytes:
        if self.ready.kind == "http":
            return http_request(self.ready, f"{self.address[0]}:{self.address[1]}")
        return self.send

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        live: list[_Attempt] = []
        last_start = 0.0
        try:
            while self.gate is not None and not self.gate() and not self.stop.is_set():
                time.sleep(GAP_S)
            while not self.stop.is_set() and not self.ready_ns:
                now = time.monotonic()
                newest = live[-1].started if live else 0.0
                if len(live) < MAX_ATTEMPTS and now - last_start >= GAP_S and (not live or now - newest >= STALL_S):
                    live.append(self._start(selector, now))
                    last_start = now
                for key, events in selector.select(timeout=GAP_S):
                    self._step(selector, live, key.data, events)
                for attempt in [a for a in live if time.monotonic() - a.started > ATTEMPT_S]:
                    self._drop(selector, live, attempt)
        finally:
            for attempt in list(live):
                self._drop(selector, live, attempt)
            selector.close()

    def _start(self, selector: selectors.BaseSelector, now: float) -> _Attempt:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(self.address)
        attempt = _Attempt(sock, now)
        selector.register(sock, selectors.EVENT_WRITE, attempt)
        self.attempts += 1
        return attempt

    def _drop(self, selector: selectors.BaseSelector, live: list[_Attempt], attempt: _Attempt) -> None:
        selector.unregister(attempt.sock)
        attempt.sock.close()
        live.remove(attempt)

    def _step(self, selector: selectors.BaseSelector, live: list[_Attempt], attempt: _Attempt, events: int) -> None:
        if not attempt.connected:
            if attempt.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._drop(selector, live, attempt)  # refused: QEMU is not listening yet
                return
            attempt.connected = True
            request = self.request()
            try:
                if request:
                    attempt.sock.sendall(request)  # small: fits the socket buffer at once
            except OSError:
                self._drop(selector, live, attempt)
                return
            selector.modify(attempt.sock, selectors.EVENT_READ, attempt)
            return
        try:
            chunk = attempt.sock.recv(4096)
        except OSError:
            chunk = b""
        arrived = time.time_ns()
        if not chunk:  # QEMU accepted, the guest did not: closed without an answer
            self._drop(selector, live, attempt)
            return
        attempt.head += chunk
        if self.ready.kind == "tcp":
            self.ready_ns = arrived
            return
        status = http_status(attempt.head)
        if status is None:
            return
        if 200 <= status < 300:
            self.ready_ns = arrived
        else:
            self.last_status = status
            self._drop(selector, live, attempt)


class ConsoleGate:
    """Whether a console log has shown a line yet (read incrementally)."""

    def __init__(self, console: Path, marker: bytes) -> None:
        self.log, self.marker = Growing(console), marker
        self.seen = False
        self.tail = b""

    def __call__(self) -> bool:
        if self.seen:
            return True
        chunk = self.log.read()
        self.seen = self.marker in self.tail + chunk
        self.tail = (self.tail + chunk)[-len(self.marker):]
        return self.seen


NET_UP_LINE = b"appliance-probe: init_net_up "


class ProbeWaiter:
    """Follows QEMU's trace log for the probe a `probe:NAME` check waits for; its time
    is QEMU's own timestamp of the write (CLOCK_REALTIME)."""

    def __init__(self, trace: Path, name: str, table: dict[tuple[int, int], str]) -> None:
        self.log, self.name, self.table = Growing(trace), name, table
        self.partial = ""
        self.ready_ns = 0

    def poll(self) -> None:
        if self.ready_ns:
            return
        lines = (self.partial + self.log.read().decode(errors="replace")).split("\n")
        self.partial = lines.pop()
        for event in parse_trace("\n".join(lines), self.table):
            if event.name == self.name:
                self.ready_ns = event.host_time_ns
                return


class Control:
    """The runner's end of a service guest's stop channel: a forwarded TCP port on which
    the guest's init powers the machine off at the first byte."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address

    def stop_guest(self, within_s: float = 5.0) -> bool:
        """Ask the guest to power off; False when its init never took the request. The
        init answers "ok"; a connection that QEMU accepted and the guest refused closes
        without it: try again."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(self.address, timeout=1.0) as sock:
                    sock.sendall(b"stop\n")
                    sock.settimeout(max(0.1, deadline - time.monotonic()))
                    if sock.recv(2) == b"ok":
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False


def waiter_for(ready: Ready, forwards: tuple[Forward, ...], ports: dict[Forward, int], *, send: bytes,
               trace: Path, table: dict[tuple[int, int], str], console: Path | None) -> AnswerWaiter | ProbeWaiter:
    """The check for READY; CONSOLE, when the guest's init announces its network there."""
    if ready.kind == "probe":
        return ProbeWaiter(trace, ready.probe, table)
    forward = forward_for(forwards, ready)
    assert forward is not None, "the template adds the ready port's forward"
    gate = ConsoleGate(console, NET_UP_LINE) if console is not None else None
    return AnswerWaiter(ready, (forward.host_address, ports.get(forward, forward.host_port)), send, gate=gate)

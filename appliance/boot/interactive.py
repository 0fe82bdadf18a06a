"""`appliance run --interactive`: the guest's console on this terminal.

QEMU serves the console on a UNIX socket and we relay it: keys from this terminal
(put in raw mode, so Ctrl-C and Ctrl-Z go to the guest) to the socket, guest output
to this terminal. The escape key ESCAPE ends the session; so does the guest powering
off. The terminal's settings are saved first and put back however the session ends
(guest exit, escape, timeout, our own SIGTERM or an exception).

Relaying (rather than QEMU's stdio character device) lets us choose the escape key, put
the terminal back ourselves, and never hand the terminal to a QEMU that might be killed.
The boot gets the runner's command-line words for the accelerator (tsc.runtime_cmdline:
without them a TCG guest on microvm wedges in TSC calibration in some boots).
"""

from __future__ import annotations

import os
import select
import socket
import sys
import tempfile
import termios
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from appliance.boot import qemu as qemu_args
from appliance.boot import tsc
from appliance.boot.qemu import BootFiles, BootSpec, Channel, Qemu
from appliance.errors import BootError

ESCAPE = b"\x1d"  # Ctrl-], as telnet and `virsh console` use it
ESCAPE_NAME = "Ctrl-]"


@contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """FD in raw mode for the block, its settings restored after (no-op if not a tty)."""
    try:
        saved = termios.tcgetattr(fd)
    except (termios.error, OSError):
        saved = None
    try:
        if saved is not None:
            tty.setraw(fd)
        yield
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _connect(path: Path, vm: Qemu, deadline: float) -> socket.socket:
    """The console socket QEMU serves, connected once QEMU listens on it."""
    connected: list[socket.socket] = []

    def listening() -> bool:
        if not path.exists():
            return False
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            return False
        connected.append(sock)
        return True

    vm.wait_ready(listening, deadline, "its console socket")
    return connected[0]


def relay(sock: socket.socket, stdin: int, stdout: int, deadline: float) -> str:
    """Copy between the terminal and the console until the guest closes it ("exit"),
    the user types ESCAPE ("escape") or DEADLINE passes ("timeout")."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        ready, _, _ = select.select([sock.fileno(), stdin], [], [], min(left, 0.5))
        if sock.fileno() in ready:
            data = sock.recv(65536)
            if not data:
                return "exit"
            os.write(stdout, data)
        if stdin in ready:
            keys = os.read(stdin, 1024)
            if not keys:  # input was a pipe and ended: let the guest finish
                return "exit" if _drain(sock, stdout, deadline) else "timeout"
            if ESCAPE in keys:
                before = keys.split(ESCAPE, 1)[0]
                if before:
                    sock.sendall(before)
                return "escape"
            sock.sendall(keys)


def _drain(sock: socket.socket, stdout: int, deadline: float) -> bool:
    """The terminal's input ended (a pipe): show the guest's output until it closes."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.5)
        if ready:
            data = sock.recv(65536)
            if not data:
                return True
            os.write(stdout, data)
    return False


def _end(vm: Qemu, grace_s: float) -> int:
    """Let QEMU finish on its own for GRACE_S (the guest closed the console while
    powering off), then kill it; its exit code."""
    assert vm.child is not None
    if grace_s:
        vm.child.wait(grace_s)
    vm.kill()
    return vm.child.returncode if vm.child.returncode is not None else -1


def run(spec: BootSpec, limit_s: float) -> int:
    """Boot SPEC's bundle with its console on this terminal until the guest powers off,
    the user types ESCAPE, or LIMIT_S seconds pass."""
    bundle = spec.bundle
    # a UNIX socket's path is limited to 107 bytes: a deep TMPDIR falls back to /tmp
    base = tempfile.gettempdir() if len(tempfile.gettempdir()) < 60 else "/tmp"
    with tempfile.TemporaryDirectory(prefix="appliance-console-", dir=base) as tmp:
        work = Path(tmp)
        files = BootFiles(work / "console.log", work / "trace.log", work / "perf.data", work / "profiled.bin")
        words = " ".join(filter(None, (tsc.runtime_cmdline(spec.accel, bundle.arch), spec.extra_cmdline)))
        argv = qemu_args.argv(replace(spec, channel=Channel.SERIAL, extra_cmdline=words), files,
                              console_socket=work / "console.sock")
        print(f"appliance: booting {bundle.path.name} on this terminal; {ESCAPE_NAME} leaves "
              f"(stopped after {limit_s:.0f} s; if this program is killed, `stty sane` restores the terminal)",
              file=sys.stderr, flush=True)
        vm = Qemu(argv, work / "qemu.stderr").start()
        how, returncode = "error", -1
        try:
            sock = _connect(work / "console.sock", vm, time.monotonic() + 10)
            with sock, raw_terminal(sys.stdin.fileno()):
                how = relay(sock, sys.stdin.fileno(), sys.stdout.fileno(), time.monotonic() + limit_s)
        finally:
            returncode = _end(vm, grace_s=5.0 if how == "exit" else 0.0)
        message = vm.last_error()
    if how == "timeout":
        raise BootError(f"interactive session stopped after {limit_s:.0f} s (--timeout sets the limit)")
    if how == "exit" and returncode != 0:
        raise BootError(f"QEMU exited with code {returncode}: {message}")
    print(f"\r\nappliance: session ended ({'guest powered off' if how == 'exit' else ESCAPE_NAME}); "
          "terminal restored", file=sys.stderr)
    return 0

"""A host-side sampling profiler that needs nothing in the guest: QEMU starts paused
with its gdbstub on a Unix socket; we let the vCPU run and, at a fixed interval, stop
it (Ctrl-C in the GDB remote protocol), read its instruction pointer, and let it go.
Works under TCG and KVM; each sample costs the guest one stop/continue round trip,
which is why the runner reports the sampled boot's time next to a normal one's.
"""

from __future__ import annotations

import socket
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from appliance.boot import qemu
from appliance.boot.measure import check_console
from appliance.boot.tsc import runtime_cmdline
from appliance.errors import BootError
from appliance.machines import Arch

# the program counter's number in GDB's register numbering: x86-64's rip follows the 16
# general registers; aarch64's pc follows x0-x30 and sp
PC = {Arch.X86_64: 16, Arch.AARCH64: 32}


class GdbRemote:
    """The few packets of the GDB remote serial protocol a sampler needs."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _read_packet(self) -> str:
        while True:
            start = self.buffer.find(b"$")
            end = self.buffer.find(b"#", start) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buffer) >= end + 3:
                data = self.buffer[start + 1:end]
                self.buffer = self.buffer[end + 3:]
                self.sock.sendall(b"+")
                return data.decode(errors="replace")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("gdbstub closed the connection")
            self.buffer += chunk

    def command(self, data: str) -> str:
        checksum = sum(data.encode()) % 256
        self.sock.sendall(f"${data}#{checksum:02x}".encode())
        return self._read_packet()

    def send(self, data: str) -> None:
        """A packet whose answer comes later (continue)."""
        checksum = sum(data.encode()) % 256
        self.sock.sendall(f"${data}#{checksum:02x}".encode())

    def interrupt(self) -> str:
        self.sock.sendall(b"\x03")
        return self._read_packet()

    def register(self, number: int) -> int:
        """Register NUMBER from a `g` (all registers) reply: QEMU's x86-64 stub answers `p`
        with nothing, and lays out `g` as 8 bytes per register (rip the 17th; on aarch64,
        pc the 33rd)."""
        reply = self.command("g")
        field = reply[number * 16:(number + 1) * 16]
        if len(field) != 16 or reply.startswith("E"):
            raise ConnectionError(f"gdbstub gave no register {number}: {reply[:40]!r}")
        return int.from_bytes(bytes.fromhex(field), "little")


@dataclass
class SampledBoot:
    samples: list[tuple[int, int]]  # (host ns, the vCPU's pc): analysis/sampled.py reads them
    console: str
    wall_ms: float  # QEMU's life, exec to exit
    stop_us: list[float] = field(default_factory=list)  # per sample: how long the vCPU stood still


def _connect(path: Path, deadline: float) -> socket.socket:
    while True:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise BootError("QEMU's gdbstub socket never appeared") from None
            time.sleep(0.01)


def sample_boot(spec: qemu.BootSpec, interval_ms: float) -> SampledBoot:
    """Boot SPEC's bundle once while sampling its vCPU's instruction pointer every INTERVAL_MS."""
    bundle, timeout = spec.bundle, spec.timeout
    with tempfile.TemporaryDirectory(prefix="appliance-sample-") as tmp:
        work = Path(tmp)
        files = qemu.BootFiles(work / "console.log", work / "trace.log", work / "perf.data")
        cmdline = " ".join(filter(None, (runtime_cmdline(spec.accel, bundle.arch), spec.extra_cmdline)))
        argv = qemu.argv(replace(spec, channel=qemu.Channel.TRACE, extra_cmdline=cmdline), files)
        gdb = work / "gdb.sock"
        argv += ["-chardev", f"socket,id=gdb0,path={gdb},server=on,wait=off", "-gdb", "chardev:gdb0", "-S"]
        samples: list[tuple[int, int]] = []
        stops: list[float] = []
        deadline = time.monotonic() + timeout
        with qemu.Qemu(argv, work / "qemu.stderr") as vm:
            sock = _connect(gdb, time.monotonic() + 10)
            sock.settimeout(10)
            remote = GdbRemote(sock)
            try:
                remote.command("?")
                remote.send("c")
                while time.monotonic() < deadline:
                    time.sleep(interval_ms / 1000)
                    stopped = time.perf_counter()
                    reply = remote.interrupt()
                    if reply[:1] in ("W", "X"):
                        break
                    at = time.time_ns()
                    samples.append((at, remote.register(PC[bundle.arch])))
                    remote.send("c")
                    stops.append((time.perf_counter() - stopped) * 1e6)
                else:
                    raise BootError(f"guest did not finish within {timeout:g} s while sampled (hang?)")
            except (ConnectionError, OSError):
                pass  # QEMU exited (the guest powered off): the socket closed under us
            finally:
                sock.close()
            try:
                done = vm.wait(deadline + 5)
            except BootError:
                raise BootError("the guest did not power off after its last sample (hang?); QEMU was killed") from None
        console = files.console.read_text(errors="replace") if files.console.exists() else ""
        check_console(console)  # a panic or a failed payload makes the profile worthless
        return SampledBoot(samples, console, (done.exit_ns - done.exec_ns) / 1e6, stops)

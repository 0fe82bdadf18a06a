"""The sampler's GDB remote protocol against a real QEMU gdbstub: a CPU held at reset
reads its reset vector, and a running one stops at an interrupt and reads its pc."""

import socket
import time

import pytest

from appliance.boot import sampler
from appliance.boot.qemu import Qemu
from appliance.errors import BootError
from appliance.machines import Arch


@pytest.fixture
def stub(tmp_path):
    """A PC with no kernel, held at reset (-S), its gdbstub on a socket."""
    path = tmp_path / "gdb.sock"
    argv = ["timeout", "60", "qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-S", "-nodefaults", "-display",
            "none", "-chardev", f"socket,id=gdb0,path={path},server=on,wait=off", "-gdb", "chardev:gdb0"]
    with Qemu(argv, tmp_path / "stderr"):
        sock = sampler._connect(path, time.monotonic() + 20)
        try:
            yield sampler.GdbRemote(sock)
        finally:
            sock.close()


def test_a_cpu_held_at_reset_is_at_its_reset_vector(stub):
    assert stub.register(sampler.PC[Arch.X86_64]) == 0xFFF0  # x86's reset: CS base 0xffff0000, rip 0xfff0


def test_a_running_cpu_stops_at_an_interrupt_and_reads_its_pc(stub):
    stub.send("c")
    time.sleep(0.2)
    assert stub.interrupt().startswith("T")  # a stop reply: the vCPU stands still
    assert isinstance(stub.register(sampler.PC[Arch.X86_64]), int)
    stub.send("c")


def test_a_gdbstub_that_never_appears_is_one_line(tmp_path):
    with pytest.raises(BootError, match="gdbstub socket never appeared"):
        sampler._connect(tmp_path / "none.sock", time.monotonic() + 0.1)


def test_a_closed_connection_is_said(tmp_path):
    left, right = socket.socketpair()
    right.shutdown(socket.SHUT_WR)  # the stub takes the packet, then hangs up without an answer
    with pytest.raises(ConnectionError, match="gdbstub closed the connection"):
        sampler.GdbRemote(left).command("g")
    left.close()
    right.close()

"""The monitor (QMP) of a real QEMU: commands answered, a refusal in one line, the
RESUME event's own time, and a QEMU that ended named as such rather than "Disconnected"."""

import time

import pytest

from appliance.boot import qmp
from appliance.boot.qemu import Qemu
from appliance.errors import BootError


@pytest.fixture
def paused_qemu(tmp_path):
    """QEMU with no machine, stopped before it runs (-S), its monitor on a socket."""
    sock = tmp_path / "qmp.sock"
    argv = ["timeout", "60", "qemu-system-x86_64", "-machine", "none", "-S", "-nodefaults", "-display", "none",
            "-qmp", f"unix:{sock},server=on,wait=off"]
    with Qemu(argv, tmp_path / "stderr") as vm:
        monitor = qmp.Monitor(sock, vm, time.monotonic() + 30)
        yield vm, monitor
        monitor.close()


def test_a_command_is_answered_and_a_refused_one_is_one_line(paused_qemu):
    _, monitor = paused_qemu
    assert monitor.command("query-status")["status"] == "prelaunch"
    with pytest.raises(BootError, match="QEMU's monitor refused no-such-command"):
        monitor.command("no-such-command")


def test_cont_returns_the_resume_events_own_time(paused_qemu):
    _, monitor = paused_qemu
    before = time.time_ns()
    resumed = monitor.resumed_ns(time.monotonic() + 10)
    assert before - 1_000_000 <= resumed <= time.time_ns()  # the event's stamp has microseconds
    assert monitor.command("query-status")["running"]


def test_a_qemu_that_ended_is_named_not_a_disconnect(paused_qemu):
    vm, monitor = paused_qemu
    vm.child.end(grace_s=5)  # SIGTERM: QEMU ends cleanly (status 0), as when its guest powers off
    with pytest.raises(BootError, match="the guest powered off before QEMU's monitor was asked query-status"):
        monitor.command("query-status")


def test_a_full_disk_during_a_migration_says_so():
    assert qmp.migration_failure("failed", "Unable to write to file: No space left on device").startswith(
        "no space left on the device the snapshot is written to")
    assert qmp.migration_failure("failed", "socket closed") == "QEMU's migration failed: socket closed"

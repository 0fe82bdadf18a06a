"""The QEMU Monitor Protocol, through the qemu.qmp library (QEMU's own): what snapshots
and restores ask of a running QEMU. QEMU listens on a UNIX socket (`-qmp
unix:PATH,server=on,wait=off`); we connect once it does."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from appliance.boot.qemu import Qemu
from appliance.errors import BootError

STATE_FD = "appliance-state"  # the name QEMU's monitor knows a snapshot state's descriptor by


def migration_failure(status: object, reason: str) -> str:
    """One line for a failed migration; a full disk says so (QEMU's own words for it
    vary: "No space left on device", or a write that failed with errno 28)."""
    if "No space left" in reason or "ENOSPC" in reason or "(28)" in reason:
        return f"no space left on the device the snapshot is written to ({reason}): free some space or give -o elsewhere"
    return f"QEMU's migration {status}: {reason}"


class Monitor:
    """A connected QMP session with one QEMU."""

    def __init__(self, path: Path, vm: Qemu, deadline: float) -> None:
        from qemu.qmp import legacy  # imported with the first snapshot or restore

        def listening() -> bool:
            if not path.exists():
                return False
            try:
                client = legacy.QEMUMonitorProtocol(str(path))
                client.connect()
            except Exception:  # noqa: BLE001 - any refusal: QEMU is not listening yet
                return False
            self.client = client
            return True

        self.vm = vm
        vm.wait_ready(listening, deadline, "its monitor (QMP)")

    def command(self, name: str, **arguments: Any) -> Any:
        try:
            return self.client.cmd(name, **arguments)
        except Exception as exc:  # noqa: BLE001 - the library's errors: one line for the user
            raise BootError(self._gone(name) or f"QEMU's monitor refused {name}: {exc}") from None

    def _gone(self, name: str) -> str | None:
        """Why the monitor went away when QEMU itself ended (killed from outside, or its
        own failure), rather than the library's "Disconnected"."""
        child = self.vm.child
        code = child.poll() if child is not None else None
        if code is None:
            return None
        if code == 0:
            return (f"the guest powered off before QEMU's monitor was asked {name}: it ran past the snapshot's point "
                    "and ended; take the snapshot where the guest goes on working")
        if code < 0:
            return f"QEMU was killed by {signal.Signals(-code).name} while its monitor was asked {name} (from outside)"
        return f"QEMU exited with status {code} while its monitor was asked {name}"

    def pass_file(self, fd: int, name: str) -> None:
        """Hand QEMU an open file descriptor (SCM_RIGHTS over the monitor's socket) under
        NAME, for a `fd:NAME` migration URI: no shell and no path ever reaches QEMU."""
        try:
            self.client.send_fd_scm(fd)
        except Exception as exc:  # noqa: BLE001 - the library's errors: one line for the user
            raise BootError(f"could not pass a file to QEMU's monitor: {exc}") from None
        self.command("getfd", fdname=name)

    def migration(self, deadline: float) -> dict[str, Any]:
        """Wait until the current migration (a save or a load) completes; its final state."""
        while time.monotonic() < deadline:
            state = self.command("query-migrate")
            if state.get("status") == "completed":
                return dict(state)
            if state.get("status") in ("failed", "cancelled"):
                raise BootError(migration_failure(state.get("status"), state.get("error-desc", "no reason given")))
            time.sleep(0.002)
        raise BootError("QEMU's migration did not complete in time")

    def resumed_ns(self, deadline: float) -> int:
        """Continue the guest and return when it ran again (the RESUME event's own
        timestamp, CLOCK_REALTIME like the trace's)."""
        self.command("cont")
        while time.monotonic() < deadline:
            event = self.client.pull_event(wait=max(0.01, deadline - time.monotonic()))
            if event and event.get("event") == "RESUME":
                stamp = event["timestamp"]
                return int(stamp["seconds"]) * 1_000_000_000 + int(stamp["microseconds"]) * 1000
        raise BootError("the restored guest did not resume in time")

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001, S110 - QEMU may have gone already (after quit)
            pass

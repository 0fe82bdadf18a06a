"""What one worker keeps between blocks: where shipped bundles are cached, the host label
it reports, and the runs its client cancelled.

It is a Dask worker plugin, given to the worker by `appliance worker` when it starts
it, and found through the worker itself by what the client runs there (a block, and the
`missing`, `receive` and `abort` below, which `client.run` hands their worker as
`dask_worker`): no module state that another module sets. A worker that was not started
by `appliance worker` (a local cluster's, in the client's own process) gets a state of
its own on first use, without a cache: it boots bundles from their folders.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from appliance import proc
from appliance.errors import BundleError
from appliance.fleet import ship

NAME = "appliance"


class WorkerState(WorkerPlugin):
    """One worker's bundle cache, host label and cancelled runs."""

    name = NAME

    def __init__(self, cache: Path | None = None, host_label: str = "") -> None:
        self.cache = cache
        self.host_label = host_label or socket.gethostname()
        self._aborted: set[str] = set()
        self._lock = threading.Lock()

    def bundle_cache(self) -> Path:
        if self.cache is None:
            raise BundleError("this worker has no bundle cache: it was not started by `appliance worker`")
        return self.cache

    def abort(self, run_id: str) -> None:
        with self._lock:
            self._aborted.add(run_id)

    def cancelled(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._aborted


def of(worker: Any = None) -> WorkerState:
    """WORKER's state (this task's worker when None)."""
    if worker is None:
        from distributed import get_worker

        worker = get_worker()
    found = worker.plugins.get(NAME)
    if not isinstance(found, WorkerState):
        found = worker.plugins[NAME] = WorkerState()
    return found


def missing(digests: list[str], dask_worker: Any = None) -> list[str]:
    """The pieces among DIGESTS this worker does not hold (run by the client's client.run)."""
    return ship.missing(of(dask_worker).bundle_cache(), digests)


def receive(digest: str, payload: dict[str, bytes] | bytes, dask_worker: Any = None) -> None:
    """Keep a piece the client sent, checked against its digest."""
    ship.receive(of(dask_worker).bundle_cache(), digest, payload)


def abort(run_id: str, dask_worker: Any = None) -> int:
    """Cancel RUN_ID's blocks on this worker: no further boot starts, and every QEMU this
    process runs now is ended. Returns how many programs were ended."""
    of(dask_worker).abort(run_id)
    return proc.end_all()

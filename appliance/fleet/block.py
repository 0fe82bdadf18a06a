"""A block: every arm of a run interleaved for a few rounds on one worker.

This is the function a worker runs. It boots through the same Session and interleave
as a run on one host, so a block's records are ordinary run records; it adds which
worker ran them. Cancelling (Ctrl-C on the client) marks the run aborted here and
ends every QEMU this process started, so nothing keeps booting for a client that left.
"""

from __future__ import annotations

import functools
import socket
import threading
from dataclasses import dataclass
from typing import Any

from appliance import proc
from appliance.boot import accel as accels
from appliance.boot import hostfacts
from appliance.bundle import Bundle
from appliance.errors import ApplianceError, BootError
from appliance.fleet import ship
from appliance.runs import bench

HOST_LABEL: str | None = None  # `appliance worker --host-label`; the host name otherwise


@dataclass(frozen=True)
class Arm:
    """One side of the run: what to boot (a bundle here, or a reference to ship) and how."""

    bundle: Bundle | ship.BundleRef
    plan: bench.Plan  # without a fleet: the worker boots here


@dataclass(frozen=True)
class Block:
    run_id: str  # the client's run: what Ctrl-C cancels
    number: int
    arms: tuple[Arm, ...]
    rounds: int  # counted rounds
    warmup: int  # uncounted rounds first: each block warms its own host
    accel: str  # as asked (auto, kvm, tcg): each worker resolves it for itself
    seed: int  # the arm order's


class Cancelled(ApplianceError):
    """The client cancelled this run while the block was booting."""


_ABORTED: set[str] = set()
_LOCK = threading.Lock()


def abort(run_id: str) -> int:
    """Cancel RUN_ID's blocks on this worker: no further boot starts, and every QEMU this
    process runs now is ended. Returns how many programs were ended."""
    with _LOCK:
        _ABORTED.add(run_id)
    return proc.end_all()


def identity() -> dict[str, Any]:
    """Which worker this is: its address, its Dask name and the host label it reports."""
    from distributed import get_worker

    worker = get_worker()
    return {"address": worker.address, "name": str(worker.name), "host_name": HOST_LABEL or socket.gethostname()}


@functools.cache
def _accel(requested: str) -> accels.AccelChoice:
    return accels.choose(requested)


def run(block: Block) -> dict[str, Any]:
    """Boot BLOCK here; its run records per arm, who ran them and on what host. A failed
    boot (without keep-going) comes back as an error entry, not an exception, so the
    client can say which worker saw it."""
    me = identity()
    if block.run_id in _ABORTED:
        raise Cancelled(f"run {block.run_id} was cancelled")
    try:
        bundles = [arm.bundle if isinstance(arm.bundle, Bundle) else ship.materialize(arm.bundle)
                   for arm in block.arms]
        choice = _accel(block.accel)
        sessions = [bench.Session(b, choice, arm.plan) for b, arm in zip(bundles, block.arms, strict=True)]
    except ship.MissingPieces as exc:  # the client sends them and submits the block again
        return {"number": block.number, "worker": me, "missing": str(exc)}
    except ApplianceError as exc:
        return {"number": block.number, "worker": me, "error": str(exc), "console_tail": ""}

    def check(*_: object) -> None:  # between boots: stop when the client has cancelled
        if block.run_id in _ABORTED:
            raise Cancelled(f"run {block.run_id} was cancelled")

    try:
        bench.interleave(sessions, block.warmup, block.rounds, progress=check, seed=block.seed)
    except BootError as exc:
        check()
        return {"number": block.number, "worker": me, "error": str(exc), "console_tail": exc.console_tail}
    return {"number": block.number, "worker": me, "host": hostfacts.collect(bundles[0].arch),
            "accel": {"used": choice.accel, "reason": choice.reason},
            "runs": [s.runs for s in sessions], "exit_probes": [s.exit_probes for s in sessions]}

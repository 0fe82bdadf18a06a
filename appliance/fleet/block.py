"""A block: every arm of a run interleaved for a few rounds on one worker.

This is the function a worker runs. It boots through the same Session and interleave
as a run on one host, so a block's records are ordinary run records; it adds which
worker ran them. Cancelling (Ctrl-C on the client) marks the run aborted here and
ends every QEMU this process started, so nothing keeps booting for a client that left.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from appliance.boot import accel as accels
from appliance.boot import hostfacts
from appliance.bundle import Bundle
from appliance.errors import ApplianceError, BootError
from appliance.fleet import ship
from appliance.results import RunRecord
from appliance.runs import bench


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


def identity() -> dict[str, str]:
    """Which worker this is: its address, its Dask name and the host label it reports."""
    from distributed import get_worker

    from appliance.fleet import state  # imports distributed: only on a worker

    worker = get_worker()
    return {"address": worker.address, "name": str(worker.name), "host_name": state.of(worker).host_label}


@functools.cache
def _accel(requested: str) -> accels.AccelChoice:
    return accels.choose(requested)


@dataclass(frozen=True)
class BlockResult:
    """What a worker sends back for a block: its records per arm, or why there are none.
    MISSING: the worker lacks pieces of a bundle (it joined late): the client ships them
    and submits the block again. ERROR: a boot failed (without keep-going) or the
    block could not start; its console's tail with it."""

    number: int
    worker: dict[str, str]  # address, name, host_name
    missing: str = ""
    error: str = ""
    console_tail: str = ""
    host: dict[str, Any] | None = None
    accel: dict[str, str] | None = None  # used, reason
    runs: list[list[RunRecord]] = field(default_factory=list)  # per arm
    exit_probes: list[list[str]] = field(default_factory=list)  # per arm


def run(block: Block) -> BlockResult:
    """Boot BLOCK here; its run records per arm, who ran them and on what host. A failed
    boot (without keep-going) comes back as an error, not an exception, so the client
    can say which worker saw it."""
    from appliance.fleet import state

    me = identity()
    mine = state.of()
    if mine.cancelled(block.run_id):
        raise Cancelled(f"run {block.run_id} was cancelled")
    try:
        bundles = [arm.bundle if isinstance(arm.bundle, Bundle) else ship.materialize(mine.bundle_cache(), arm.bundle)
                   for arm in block.arms]
        choice = _accel(block.accel)
        sessions = [bench.Session(b, choice, arm.plan) for b, arm in zip(bundles, block.arms, strict=True)]
    except ship.MissingPieces as exc:  # the client sends them and submits the block again
        return BlockResult(block.number, me, missing=str(exc))
    except ApplianceError as exc:
        return BlockResult(block.number, me, error=str(exc))

    def check(*_: object) -> None:  # between boots: stop when the client has cancelled
        if mine.cancelled(block.run_id):
            raise Cancelled(f"run {block.run_id} was cancelled")

    try:
        bench.interleave(sessions, block.warmup, block.rounds, progress=check, seed=block.seed)
    except BootError as exc:
        check()
        return BlockResult(block.number, me, error=str(exc), console_tail=exc.console_tail)
    return BlockResult(block.number, me, host=hostfacts.collect(bundles[0].arch),
                       accel={"used": choice.accel.value, "reason": choice.reason},
                       runs=[s.runs for s in sessions], exit_probes=[s.exit_probes or [] for s in sessions])

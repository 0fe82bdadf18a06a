"""`appliance worker SCHEDULER`: a Dask worker that boots bundles.

Before it joins, it checks its host: which architectures it has a QEMU for (it offers
only those, as Dask resources, so it is never given a bundle it cannot boot), whether
that QEMU has the trace event the default channel reads, and whether KVM really runs
a guest here. A host that can boot nothing says why and does not join. It runs one
block at a time (one thread), keeps shipped bundles in a cache keyed by sha256, and
says who it is in every block's records (address, name and --host-label).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import proc
from appliance.boot import accel
from appliance.errors import ApplianceError
from appliance.fleet import address, state
from appliance.fleet.cluster import resource
from appliance.fleet.tls import Tls, check_wire, reach
from appliance.machines import Accel, Arch

TRACE_EVENT = "memory_region_ops_write"
JOIN_TIMEOUT_S = 10  # how long a worker tries to reach its scheduler before saying it cannot
DEATH_TIMEOUT_S = 60  # a worker whose scheduler is gone this long exits (its QEMUs die with it)


@dataclass(frozen=True)
class Checked:
    """What the host can do, as found before joining."""

    arches: tuple[Arch, ...]
    accel: accel.AccelChoice
    notes: tuple[str, ...]  # what works with less: one line each


def check_host() -> Checked:
    """The architectures this host can boot, its accelerator, and what is missing."""
    arches, notes = [], []
    for arch in Arch:
        qemu = shutil.which(arch.qemu)
        if qemu is None:
            notes.append(f"no {arch.qemu}: {arch.value} bundles go to other workers "
                         f"(apt-get install {proc.PACKAGES.get(arch.qemu, arch.qemu)})")
            continue
        listing = proc.run([qemu, "-trace", "help"], timeout=30, check=False).stdout
        if TRACE_EVENT not in listing:
            notes.append(f"{arch.qemu} lacks the {TRACE_EVENT} trace event: the trace channel will fail here; "
                         "install Debian's QEMU")
        arches.append(arch)
    if not arches:
        raise ApplianceError("this host has no QEMU to boot bundles with: install qemu-system-x86 "
                             "(or qemu-system-arm), then start the worker again")
    choice = accel.choose("auto") if Arch.X86_64 in arches else accel.AccelChoice(Accel.TCG, "no x86 QEMU to probe KVM")
    if choice.accel is Accel.TCG:
        notes.append(f"boots use TCG here: {choice.reason}")
    return Checked(tuple(arches), choice, tuple(notes))


def serve(scheduler: str, *, name: str | None, host_label: str | None, listen: str, cache: Path,
          log: Any, tls: Tls | None = None, insecure: bool = False) -> None:
    """Check the host, then run a Dask worker for SCHEDULER until it is told to stop. It
    listens on LISTEN (127.0.0.1 unless told otherwise): its port runs code for whoever
    connects, so beyond loopback only with TLS, or with INSECURE said out loud."""
    where = address.parse(scheduler)
    check_wire(f"the scheduler {scheduler}", where.scheme, where.host, tls, insecure)
    check_wire(f"the worker's --listen {listen}", where.scheme, listen, tls, insecure)
    checked = check_host()
    mine = state.WorkerState(cache, host_label or socket.gethostname())
    for note in checked.notes:
        print(f"worker: {note}", file=log)
    offers = {resource(a): 1.0 for a in checked.arches}
    print(f"worker: {mine.host_label}: boots {', '.join(a.value for a in checked.arches)} with "
          f"{checked.accel.accel}; bundle cache {cache}; joining {scheduler}", file=log, flush=True)
    asyncio.run(_run(scheduler, name, listen, offers, tls.security() if tls is not None else None, mine))


async def _run(scheduler: str, name: str | None, listen: str, offers: dict[str, float], security: Any,
               mine: state.WorkerState) -> None:
    from distributed import Worker

    await reach(scheduler, security, "worker", JOIN_TIMEOUT_S)  # Dask's worker would retry for death_timeout
    try:
        async with Worker(scheduler, nthreads=1, name=name, resources=offers, host=listen, security=security,
                          dashboard=False, death_timeout=DEATH_TIMEOUT_S, plugins=(mine,)) as worker:
            await worker.finished()
    except (OSError, TimeoutError) as exc:
        raise ApplianceError(f"cannot join the Dask scheduler at {scheduler} ({exc}): is `dask scheduler` "
                             "running there, and is its port reachable from this host?") from None

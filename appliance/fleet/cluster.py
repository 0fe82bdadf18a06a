"""The client's side of a fleet: connect, ship bundles, run waves of blocks, merge.

A run of R rounds over W workers goes in waves: each wave splits its rounds into one
block per worker (blocks of whole rounds, every arm in each), and a sequential run
looks at its answer only between waves, so a look always sees whole blocks. A block
lost with its worker is run again by the scheduler on another (Dask reschedules the
task); its records arrive once, from the run that finished. Records are merged into
the client's sessions as blocks arrive, named by the worker that ran them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError, BootError, Interrupted
from appliance.fleet import block, ship
from appliance.fleet.address import Address
from appliance.fleet.tls import Tls, check_wire, reach
from appliance.machines import Arch
from appliance.runs import bench

CONNECT_S = 15.0  # how long to try a scheduler before saying it is unreachable
WAIT_WORKERS_S = 60.0  # how long a run waits for a worker that can boot its bundles


def resource(arch: Arch) -> str:
    """The Dask resource a worker offers per architecture it can boot: a block asks for
    one unit, so a worker runs one block at a time and only bundles it can boot."""
    return f"qemu-{arch.value}"


def split(rounds: int, workers: int) -> list[int]:
    """ROUNDS as whole-round blocks over WORKERS, as even as can be, largest first."""
    count = max(1, min(workers, rounds))
    return [rounds // count + (1 if k < rounds % count else 0) for k in range(count)]


def wave_ends(start: int, n: int, looks: Sequence[int], workers: int) -> list[int]:
    """Where each wave ends (counted rounds done after it). A wave runs at least one
    round per worker, so a look planned after every round (tune saving its results)
    does not leave workers idle; the looks a wave passes are taken at its end."""
    ends: list[int] = []
    done = start
    marks = sorted({*(k for k in looks if start < k <= n), n})
    while done < n:
        reach = min(n, done + max(workers, 1))
        done = next(k for k in marks if k >= reach)
        ends.append(done)
    return ends


class Fleet:
    """A connection to a cluster that runs interleaved rounds as blocks (bench.Spread)."""

    def __init__(self, address: Address, accel: str, log: Any = sys.stderr, *, tls: Tls | None = None,
                 insecure: bool = False) -> None:
        self.address, self.accel, self.log = address, accel, log
        self.tls, self.insecure = tls, insecure
        self.run_id = uuid.uuid4().hex
        self._client: Any = None
        self._local: Any = None
        self._holding: set[tuple[str, str]] = set()  # (worker, piece) known to be there
        self._blocks = 0
        self._rounds = (0, 0)  # counted rounds done and planned: for a message when the scheduler is lost

    def open(self) -> Fleet:
        from distributed import Client

        quiet_dask()
        if not self.address.local:
            check_wire(f"--cluster {self.address}", self.address.scheme, self.address.host, self.tls, self.insecure)
        try:
            if self.address.local:
                self._local = _local_cluster(self.address.local_workers)
                self._client = Client(self._local, set_as_default=False)
            else:
                security = self.tls.security() if self.tls is not None else None
                asyncio.run(reach(str(self.address.scheduler), security, "client", CONNECT_S))
                self._client = Client(self.address.scheduler, timeout=f"{CONNECT_S}s", set_as_default=False,
                                      security=security)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ApplianceError(f"cannot reach the Dask scheduler at {self.address} ({exc}): start one with "
                                 "`appliance scheduler` and workers with `appliance worker`, or check --cluster "
                                 "and the TLS certificates") from None
        return self

    def close(self) -> None:
        for part in (self._client, self._local):
            if part is not None:
                try:
                    part.close()
                except Exception:  # noqa: BLE001 - closing a cluster that is already gone
                    pass
        self._client = self._local = None

    # -- which workers, and what they hold

    def workers(self, arch: Arch) -> list[str]:
        """The workers that can boot ARCH bundles; waits a while for one to join."""
        deadline = time.monotonic() + WAIT_WORKERS_S
        while True:
            if self._client.status != "running":
                raise self._lost("its connection is " + str(self._client.status))
            info = self._client.scheduler_info(n_workers=-1).get("workers")
            if info is None:
                raise self._lost("it no longer answers")
            able = sorted(a for a, w in info.items() if w.get("resources", {}).get(resource(arch)))
            if able or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not able:
            raise ApplianceError(f"no worker of the cluster at {self.address} can boot {arch.value} bundles "
                                 f"({len(info)} worker(s) joined): start `appliance worker` on a host with "
                                 f"{arch.qemu}")
        return able

    def _ship(self, arms: list[block.Arm], where: dict[str, Path], workers: list[str]) -> None:
        """Send each worker the pieces it lacks, once; a worker with the digest gets nothing."""
        if self.address.local:
            return  # in-process workers read the bundles where they lie
        wanted = list(where)
        for worker in workers:
            unknown = [d for d in wanted if (worker, d) not in self._holding]
            if not unknown:
                continue
            from appliance.fleet import state  # the worker's side: distributed only when a cluster is used

            lacking = self._client.run(state.missing, unknown, workers=[worker])[worker]
            for digest in lacking:
                self._client.run(state.receive, digest, ship.pack(where[digest]), workers=[worker])
                print(f"fleet: sent {where[digest].name} ({digest[:12]}) to {worker}", file=self.log)
            self._holding.update((worker, d) for d in unknown)

    def _arms(self, sessions: Sequence[bench.Session]) -> tuple[list[block.Arm], dict[str, Path]]:
        arms, where = [], {}
        for session in sessions:
            plan = replace(session.plan, fleet=None)
            if plan.restore is not None:
                raise ApplianceError("--restore with --cluster: a snapshot belongs to the host that took it; "
                                     "restore it on that host without --cluster")
            if self.address.local:
                arms.append(block.Arm(session.bundle, plan))
                continue
            ref, pieces = ship.ref_of(session.bundle)
            arms.append(block.Arm(ref, plan))
            where.update(pieces)
        return arms, where

    # -- running rounds

    def interleave(self, sessions: Sequence[bench.Session], warmup: int, n: int, *, progress: bench.Progress | None,
                   looks: Sequence[int], stop: Callable[[int], bool] | None) -> int:
        """bench.interleave's rounds, run as blocks on the cluster's workers. A resumed
        run goes on from the sessions' counted boots (every block warms up on its own, so
        uncounted ones do not count as rounds here)."""
        arch = sessions[0].bundle.arch
        arms, where = self._arms(sessions)
        start = min(sum(1 for r in s.runs if not r["warmup"]) for s in sessions)
        self._blocks = max([self._blocks, *(r.get("block", 0) for s in sessions for r in s.runs)])
        started, done_boots = time.monotonic(), 0
        done = start
        self._rounds = (start, n)
        workers = self.workers(arch)
        for wave, end in enumerate(wave_ends(start, n, looks, len(workers))):
            workers = workers if wave == 0 else self.workers(arch)  # who is there now: some joined or left
            self._ship(arms, where, workers)
            blocks = [self._block(arms, size, warmup) for size in split(end - done, len(workers))]
            total = sum(b.rounds + b.warmup for b in blocks) * len(arms)
            for result in self._run(blocks, arch, arms, where):
                _merge(sessions, result, str(self.address))
                who = result.worker
                print(f"fleet: block {result.number} ({len(result.runs[0])} boots a side) from "
                      f"{who['host_name']} ({who['address']})", file=self.log, flush=True)
                done_boots += sum(len(r) for r in result.runs)
                if progress is not None:
                    progress(done_boots, max(total, done_boots), time.monotonic() - started)
            done = end
            self._rounds = (done, n)
            self._note_lost(sessions, workers, wave + 1)
            if done in looks and stop is not None and stop(done):
                return done
        return n

    def _note_lost(self, sessions: Sequence[bench.Session], workers: list[str], wave: int) -> None:
        """The workers of a wave that left the cluster during it (Dask ran their blocks
        again elsewhere): said once, and listed in each run set's fleet.lost_workers."""
        info = self._client.scheduler_info(n_workers=-1).get("workers") or {}
        for address in sorted(set(workers) - set(info)):
            print(f"fleet: worker {address} left during wave {wave}; its block ran again on another worker",
                  file=self.log, flush=True)
            for session in sessions:
                session.note_lost_worker(address, wave)

    def _block(self, arms: list[block.Arm], rounds: int, warmup: int) -> block.Block:
        self._blocks += 1
        return block.Block(self.run_id, self._blocks, tuple(arms), rounds, warmup, self.accel,
                           random.randrange(2**32))

    def _run(self, blocks: list[block.Block], arch: Arch, arms: list[block.Arm], where: dict[str, Path]) -> Any:
        """Submit BLOCKS and yield their results as they arrive."""
        from distributed import as_completed

        client = self._client
        futures = {client.submit(block.run, b, key=f"appliance-block-{self.run_id}-{b.number}", pure=False,
                                 resources={resource(arch): 1}): b for b in blocks}
        pending = as_completed(list(futures), loop=client.loop)
        try:
            for future in pending:
                result = self._result(future, futures[future])
                if result.missing:
                    worker = result.worker["address"]  # a worker that joined after the bundles were sent
                    self._holding = {(w, d) for w, d in self._holding if w != worker}
                    self._ship(arms, where, [worker])
                    again = client.submit(block.run, futures[future], pure=False, resources={resource(arch): 1})
                    futures[again] = futures[future]
                    pending.add(again)
                    continue
                if result.error:
                    who = result.worker
                    raise BootError(f"on worker {who['host_name']} ({who['address']}): {result.error}",
                                    result.console_tail)
                yield result
        except KeyboardInterrupt:
            self.cancel(list(futures))
            raise Interrupted("interrupted: the cluster's blocks were cancelled and their QEMUs ended") from None
        except BaseException:
            self.cancel(list(futures))
            raise

    def _result(self, future: Any, blk: block.Block) -> block.BlockResult:
        from asyncio import CancelledError

        from distributed import KilledWorker
        from distributed.client import FutureCancelledError

        try:
            found = future.result()
            assert isinstance(found, block.BlockResult)
            return found
        except KilledWorker as exc:
            raise ApplianceError(f"block {blk.number} was lost with every worker that ran it ({exc}): the hosts "
                                 "may be running out of memory; see the workers' logs") from None
        except block.Cancelled:
            raise
        except (OSError, TimeoutError, CancelledError, FutureCancelledError) as exc:
            raise self._lost(type(exc).__name__) from None

    def _lost(self, why: str) -> ApplianceError:
        quiet_dask(logging.CRITICAL)  # its reconnect attempts would bury the one line that says what to do
        done, n = self._rounds
        return ApplianceError(f"lost the Dask scheduler at {self.address} after {done} of {n} rounds ({why}): "
                              "what ran is in the results file; run the same command with --resume when the "
                              "cluster is back")

    def cancel(self, futures: list[Any]) -> None:
        """Cancel FUTURES and end the QEMUs of this run on every worker, as far as the
        cluster can still be reached."""
        from appliance.fleet import state

        try:
            self._client.cancel(futures, force=True)
            self._client.run(state.abort, self.run_id, on_error="ignore")
        except Exception as exc:  # noqa: BLE001 - a cluster already gone has nothing left to cancel
            print(f"fleet: could not cancel everything ({exc}); workers end their QEMUs when they exit",
                  file=self.log)


def quiet_dask(level: int = logging.WARNING) -> None:
    """Dask logs every connection at INFO; without --debug only what is at LEVEL shows."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.startswith("distributed"):  # its config gives some children levels of their own
            logging.getLogger(name).setLevel(level)


def _local_cluster(workers: int) -> Any:
    """N workers in this process, one thread each, offering every architecture whose
    QEMU is installed here. They talk in-process (inproc://): nothing listens on a port."""
    import shutil

    from distributed import LocalCluster

    offers = {resource(a): 1 for a in Arch if shutil.which(a.qemu)}
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None,
                        resources=offers)


def _merge(sessions: Sequence[bench.Session], result: block.BlockResult, cluster: str) -> None:
    """A block's records into the sessions, each naming its worker and block."""
    for session, runs, probes in zip(sessions, result.runs, result.exit_probes, strict=True):
        session.adopt(runs, probes, result.worker, result.number)
        session.note_worker(cluster, result.worker, result.accel, result.host)

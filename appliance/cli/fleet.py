"""`appliance worker SCHEDULER`: lend this host to a fleet (see docs/FLEET.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.assemble import kernel
from appliance.errors import ApplianceError


def cmd_worker(args: argparse.Namespace) -> int:
    from appliance.fleet import address, worker

    where = address.parse(args.scheduler)
    if where.local:
        raise ApplianceError("a worker joins a running scheduler: give tcp://HOST:PORT, not local:N")
    cache = Path(args.cache) if args.cache else kernel.cache_dir() / "fleet"
    worker.serve(args.scheduler, name=args.name, host_label=args.host_label, listen=args.listen, cache=cache,
                 log=sys.stderr)
    return 0


def register(verbs: Any) -> None:
    p = verbs.add_parser("worker", help="check this host and join a Dask scheduler as a worker that boots bundles")
    p.add_argument("scheduler", help="the scheduler's address, tcp://HOST:PORT")
    p.add_argument("--name", help="the worker's name in the cluster (default: Dask's)")
    p.add_argument("--host-label", help="the host (or host type) this worker's boots are recorded under, and the "
                   "statistics' blocking factor (default: the host name)")
    p.add_argument("--listen", metavar="HOST", help="the address to listen on (default: Dask's choice; 127.0.0.1 to "
                   "stay on this machine)")
    p.add_argument("--cache", help="where shipped bundles are kept, by sha256 (default: the appliance cache's fleet/)")
    p.set_defaults(func=cmd_worker, boots=True)

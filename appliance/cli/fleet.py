"""The fleet's verbs (see docs/FLEET.md): `appliance worker SCHEDULER` lends this host
to a fleet, `appliance scheduler` runs the scheduler they join, `appliance fleet-certs`
makes the team's private CA and certificates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.assemble import kernelfetch
from appliance.errors import ApplianceError


def tls_of(args: argparse.Namespace) -> Any:
    """The TLS files the options (or APPLIANCE_TLS_*) name, or None."""
    from appliance.fleet import tls

    return tls.from_options(args.tls_ca, args.tls_cert, args.tls_key)


def cmd_worker(args: argparse.Namespace) -> int:
    from appliance.fleet import address, worker

    where = address.parse(args.scheduler)
    if where.local:
        raise ApplianceError("a worker joins a running scheduler: give tls://HOST:PORT, not local:N")
    cache = Path(args.cache) if args.cache else kernelfetch.cache_dir() / "fleet"
    worker.serve(args.scheduler, name=args.name, host_label=args.host_label, listen=args.listen, cache=cache,
                 log=sys.stderr, tls=tls_of(args), insecure=args.insecure)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from appliance.fleet import scheduler

    scheduler.serve(args.listen, args.port, tls=tls_of(args), insecure=args.insecure, log=sys.stderr)
    return 0


def cmd_fleet_certs(args: argparse.Namespace) -> int:
    from appliance.fleet import tls

    folder = Path(args.folder)
    for path in tls.make_certs(folder, args.days):
        print(path)
    print(f"give each host ca.pem and its role's .pem and .key (e.g. --tls-ca {folder}/ca.pem --tls-cert "
          f"{folder}/worker.pem --tls-key {folder}/worker.key); keep ca.key off the fleet", file=sys.stderr)
    return 0


def tls_options(p: argparse.ArgumentParser) -> None:
    """The TLS options of every verb that talks to a fleet."""
    p.add_argument("--tls-ca", metavar="PEM", help="the fleet's CA certificate (default: APPLIANCE_TLS_CA)")
    p.add_argument("--tls-cert", metavar="PEM", help="this process' certificate (default: APPLIANCE_TLS_CERT)")
    p.add_argument("--tls-key", metavar="PEM", help="its private key (default: APPLIANCE_TLS_KEY)")
    p.add_argument("--insecure", action="store_true", help="allow plain tcp:// beyond loopback: whoever reaches the "
                   "port can run code on every worker; only on a network you trust")


def register(verbs: Any) -> None:
    p = verbs.add_parser("worker", help="check this host and join a Dask scheduler as a worker that boots bundles")
    p.add_argument("scheduler", help="the scheduler's address, tls://HOST:PORT (tcp:// on loopback)")
    p.add_argument("--name", help="the worker's name in the cluster (default: Dask's)")
    p.add_argument("--host-label", help="the host (or host type) this worker's boots are recorded under, and the "
                   "statistics' blocking factor (default: the host name)")
    p.add_argument("--listen", metavar="HOST", default="127.0.0.1", help="the address to listen on (default "
                   "%(default)s: on another address the scheduler must be tls://, or --insecure given)")
    p.add_argument("--cache", help="where shipped bundles are kept, by sha256 (default: the appliance cache's fleet/)")
    tls_options(p)
    p.set_defaults(func=cmd_worker, boots=True)

    p = verbs.add_parser("scheduler", help="run the Dask scheduler a fleet's workers and clients connect to")
    p.add_argument("--listen", metavar="HOST", default="127.0.0.1", help="the address to listen on (default "
                   "%(default)s; any other needs TLS or --insecure)")
    p.add_argument("--port", type=int, default=8786, help="the port (default %(default)s; 0: a free one)")
    tls_options(p)
    p.set_defaults(func=cmd_scheduler, boots=False)

    p = verbs.add_parser("fleet-certs", help="make a private CA and a certificate for the scheduler, the workers "
                         "and the clients of a fleet (openssl)")
    p.add_argument("folder", help="an empty or new folder for ca.pem, ca.key and ROLE.pem/ROLE.key")
    p.add_argument("--days", type=int, default=825, help="how long the certificates are valid (default %(default)s)")
    p.set_defaults(func=cmd_fleet_certs, boots=False)

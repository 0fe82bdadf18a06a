"""`appliance scheduler`: a Dask scheduler for a fleet, started the safe way.

`dask scheduler` listens on every interface by default, and its HTTP server (dashboard,
metrics) on 0.0.0.0:8787 even with --no-dashboard. This one listens where it is told
(127.0.0.1 by default), speaks TLS when given certificates (and refuses plain TCP beyond
loopback without --insecure), and keeps its HTTP server on a loopback port with no
routes at all."""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.errors import ApplianceError
from appliance.fleet.tls import Tls, check_wire

PORT = 8786


def serve(listen: str, port: int, *, tls: Tls | None, insecure: bool, log: Any) -> None:
    """Run a scheduler on LISTEN:PORT until it is stopped (SIGTERM or Ctrl-C)."""
    scheme = "tls" if tls is not None else "tcp"
    check_wire(f"the scheduler's --listen {listen}", scheme, listen, tls, insecure)
    if not 0 <= port < 65536:
        raise ApplianceError(f"--port {port} is not a TCP port (0 picks a free one)")
    asyncio.run(_run(listen, port, scheme, tls.security() if tls is not None else None, log))


async def _run(listen: str, port: int, scheme: str, security: Any, log: Any) -> None:
    import dask
    from distributed import Scheduler

    with dask.config.set({"distributed.scheduler.http.routes": []}):
        try:
            async with Scheduler(host=listen, port=port, protocol=scheme, security=security, dashboard=False,
                                 dashboard_address="127.0.0.1:0") as scheduler:
                print(f"scheduler: listening at {scheduler.address}", file=log, flush=True)
                await scheduler.finished()
        except OSError as exc:
            raise ApplianceError(f"the scheduler cannot listen on {listen}:{port} ({exc.strerror or exc}): "
                                 "is the port in use? give another --port") from None

"""What --cluster (or APPLIANCE_CLUSTER) names: a running scheduler, or a local cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.errors import ApplianceError

ENV = "APPLIANCE_CLUSTER"
MAX_LOCAL = 64  # more in-process workers than this is a typo, not a plan


@dataclass(frozen=True)
class Address:
    """tls://HOST:PORT or tcp://HOST:PORT (a scheduler someone runs) or local:N (N
    workers started here)."""

    scheduler: str | None  # tls:// or tcp://host:port, or None for a local cluster
    local_workers: int = 0

    @property
    def local(self) -> bool:
        return self.scheduler is None

    @property
    def scheme(self) -> str:
        return self.scheduler.split("://", 1)[0] if self.scheduler else "local"

    @property
    def host(self) -> str:
        return _TCP.match(self.scheduler)["host"] if self.scheduler else ""  # type: ignore[index]

    def __str__(self) -> str:
        return self.scheduler or f"local:{self.local_workers}"


_TCP = re.compile(r"^(?:tcp|tls)://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})$")


def parse(text: str) -> Address:
    """The address TEXT names, or one line saying what a cluster address looks like."""
    text = text.strip()
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or not 1 <= int(count) <= MAX_LOCAL:
            raise ApplianceError(f"--cluster {text!r}: local:N takes N workers from 1 to {MAX_LOCAL}, e.g. local:2")
        return Address(None, int(count))
    match = _TCP.match(text)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ApplianceError(f"--cluster {text!r} is not a cluster address: give tls://HOST:PORT (a running "
                             "`appliance scheduler`, default port 8786; tcp:// on loopback) or local:N (N workers on "
                             "this machine)")
    return Address(text)

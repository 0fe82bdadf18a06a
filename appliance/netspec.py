"""Network and service specs, shared by templates, bundles and the runner (pure).

A forward is written as QEMU writes hostfwd rules, `tcp:8080-:80` or
`tcp:127.0.0.1:0-:80` (host port 0: the runner picks a free one for each boot). Unlike
QEMU, the host address defaults to 127.0.0.1, so an appliance is not reachable from
the network unless the template says so.

A readiness check is what the *host* runs to decide the service is up:
- `tcp:PORT`: a connection through the forward to guest PORT gets bytes back (the
  service's banner, or its answer to `[service] send`);
- `http:PORT/PATH`: a GET of PATH through the forward answers with a 2xx status;
- `probe:NAME`: the guest emitted probe NAME (a payload's own "I am listening").

With QEMU's user-mode network the host side of a forward accepts a connection as soon
as QEMU listens, before the guest does anything; only bytes coming back prove that the
guest's service accepted it. So tcp and http checks wait for an answer, never for a
connect.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# QEMU's user-mode network (slirp) defaults: the guest configures itself with these,
# without a DHCP client.
GUEST_ADDRESS = "10.0.2.15"
NETMASK = "255.255.255.0"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
INTERFACE = "eth0"
DEFAULT_HOST_ADDRESS = "127.0.0.1"

_FORWARD = re.compile(r"(?P<proto>tcp|udp):(?:(?P<addr>[0-9.]+):)?(?P<host>\d+)-(?:(?P<gaddr>[0-9.]+)?):(?P<guest>\d+)")
_READY = re.compile(r"(?P<kind>tcp|http):(?P<port>\d+)(?P<path>/\S*)?|probe:(?P<probe>[A-Za-z_][A-Za-z0-9_]*)")


class SpecError(ValueError):
    """A malformed forward or readiness spec; the message says what a good one looks like."""


@dataclass(frozen=True)
class Forward:
    proto: str  # "tcp" or "udp"
    host_port: int  # 0: pick a free one at each boot
    guest_port: int
    host_address: str = DEFAULT_HOST_ADDRESS

    def spec(self) -> str:
        return f"{self.proto}:{self.host_address}:{self.host_port}-:{self.guest_port}"

    def hostfwd(self, host_port: int) -> str:
        """QEMU's hostfwd= rule with the host port actually used."""
        return f"{self.proto}:{self.host_address}:{host_port}-{GUEST_ADDRESS}:{self.guest_port}"


@dataclass(frozen=True)
class Ready:
    kind: str  # "tcp", "http" or "probe"
    port: int = 0  # guest port, for tcp and http
    path: str = "/"  # for http
    probe: str = ""  # for probe

    def spec(self) -> str:
        if self.kind == "probe":
            return f"probe:{self.probe}"
        return f"{self.kind}:{self.port}" + (self.path if self.kind == "http" else "")

    @property
    def needs_network(self) -> bool:
        return self.kind != "probe"


def _port(value: str, what: str, spec: str, zero: bool = False) -> int:
    port = int(value)
    if not (0 if zero else 1) <= port <= 65535:
        raise SpecError(f"{what} {port} in {spec!r} is not a port ({'0' if zero else '1'}-65535)")
    return port


def parse_forward(spec: str) -> Forward:
    match = _FORWARD.fullmatch(spec.strip())
    if match is None:
        raise SpecError(f"forward {spec!r} is not PROTO:[HOSTADDR:]HOSTPORT-:GUESTPORT, e.g. 'tcp:8080-:80' "
                        "(host port 0 picks a free one)")
    address = match["addr"] or DEFAULT_HOST_ADDRESS
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise SpecError(f"forward {spec!r}: {address!r} is not an IPv4 address") from None
    if match["gaddr"] not in (None, GUEST_ADDRESS):
        raise SpecError(f"forward {spec!r}: the guest address is always {GUEST_ADDRESS}; leave it out ('-:PORT')")
    return Forward(match["proto"], _port(match["host"], "host port", spec, zero=True),
                   _port(match["guest"], "guest port", spec), address)


def parse_ready(spec: str) -> Ready:
    match = _READY.fullmatch(spec.strip())
    if match is None:
        raise SpecError(f"ready {spec!r} is not 'tcp:PORT', 'http:PORT/PATH' or 'probe:NAME'")
    if match["probe"]:
        return Ready("probe", probe=match["probe"])
    if match["kind"] == "tcp" and match["path"]:
        raise SpecError(f"ready {spec!r}: a tcp check has no path (for an HTTP check write 'http:PORT/PATH')")
    return Ready(match["kind"], _port(match["port"], "port", spec), match["path"] or "/")


def forward_for(forwards: tuple[Forward, ...], ready: Ready) -> Forward | None:
    """The TCP forward that reaches READY's guest port, if the template has one."""
    return next((f for f in forwards if f.proto == "tcp" and f.guest_port == ready.port), None)


def http_request(ready: Ready, host: str) -> bytes:
    return f"GET {ready.path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: appliance\r\n\r\n".encode()


_STATUS = re.compile(rb"HTTP/\d\.\d (\d{3})")


def http_status(head: bytes) -> int | None:
    """The status code of an HTTP response's first line, or None while it is incomplete
    (or not HTTP at all: then -1)."""
    if b"\n" not in head and len(head) < 64:
        return None
    match = _STATUS.match(head)
    return int(match[1]) if match else -1



# The guest port on which the init of an appliance with [network] takes the runner's request to power
# off; the runner forwards a free host port to it.
CONTROL_PORT = 60999

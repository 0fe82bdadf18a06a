"""The fleet's wire security: mutual TLS through Dask's own `Security`, and the rule
for when plain TCP is allowed.

Whoever can open a connection to a Dask scheduler or worker can run Python on it
(`Client.run`): the wire is the trust boundary. So every process of a fleet (the
scheduler, each `appliance worker`, each client) presents a certificate signed by the
team's CA and accepts only peers that do the same. Plain `tcp://` is accepted only to
a loopback address, or with `--insecure` for a network the user vouches for.
Certificates come from options or APPLIANCE_TLS_CA / _CERT / _KEY; `appliance
fleet-certs` makes a private CA and one certificate per role."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import proc
from appliance.errors import ApplianceError

ENV = {"ca": "APPLIANCE_TLS_CA", "cert": "APPLIANCE_TLS_CERT", "key": "APPLIANCE_TLS_KEY"}
ROLES = ("scheduler", "worker", "client")
DAYS = 825  # how long a certificate fleet-certs makes is valid


@dataclass(frozen=True)
class Tls:
    """The files one process proves itself with and checks its peers against."""

    ca: Path
    cert: Path
    key: Path

    def security(self) -> Any:
        """Dask's Security for any role: the same certificate serves as client, worker
        and scheduler, and encryption is required on every connection."""
        from distributed.security import Security

        ca, cert, key = str(self.ca), str(self.cert), str(self.key)
        return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,  # type: ignore[no-untyped-call]
                        tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert, tls_worker_key=key,
                        require_encryption=True)


def from_options(ca: str | None, cert: str | None, key: str | None) -> Tls | None:
    """The TLS files given as options (or, for each one not given, in the environment);
    None when none is given; one line when some are missing or unreadable."""
    given = {"ca": ca or os.environ.get(ENV["ca"]), "cert": cert or os.environ.get(ENV["cert"]),
             "key": key or os.environ.get(ENV["key"])}
    if not any(given.values()):
        return None
    missing = [f"--tls-{name} ({ENV[name]})" for name, value in given.items() if not value]
    if missing:
        raise ApplianceError(f"TLS needs all three of --tls-ca, --tls-cert and --tls-key: {', '.join(missing)} "
                             "not given (`appliance fleet-certs DIR` makes them)")
    for name, value in given.items():
        if not Path(str(value)).is_file() or not os.access(str(value), os.R_OK):
            raise ApplianceError(f"--tls-{name} {value}: not a readable file")
    return Tls(Path(str(given["ca"])), Path(str(given["cert"])), Path(str(given["key"])))


def is_loopback(host: str) -> bool:
    """Whether HOST (a name or an address, IPv6 in brackets or not) stays on this machine."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_wire(what: str, scheme: str, host: str, tls: Tls | None, insecure: bool) -> None:
    """Refuse a connection or a listener that would let strangers run code: tls:// without
    certificates, or plain tcp:// beyond loopback without --insecure. WHAT names it."""
    if scheme == "tls" and tls is None:
        raise ApplianceError(f"{what} is tls:// but no certificates were given: pass --tls-ca, --tls-cert and "
                             "--tls-key (or APPLIANCE_TLS_*); `appliance fleet-certs DIR` makes them")
    if scheme == "tcp" and tls is not None:
        raise ApplianceError(f"{what} is plain tcp:// but certificates were given: write tls://{host}:PORT")
    if scheme == "tcp" and not is_loopback(host) and not insecure:
        raise ApplianceError(f"{what} is plain tcp:// to {host}: anyone who can reach that port could run code on "
                             "every worker; use tls:// with certificates (`appliance fleet-certs`), or --insecure "
                             "on a network you trust")


async def reach(address: str, security: Any, role: str, timeout: float) -> None:
    """Open one connection to ADDRESS as ROLE (Dask's handshake included) and close it,
    within TIMEOUT in all: one line saying what is at the other end when it fails. Dask
    itself retries a refused or unverified connection for a minute, and waits on a port
    that is not Dask (an HTTP server) for minutes."""
    import asyncio

    from distributed.comm.core import connect

    if not _listening(address):  # refused at once: Dask would retry it for TIMEOUT
        raise ApplianceError(f"cannot reach the Dask scheduler at {address}: nothing listens there (the connection "
                             "was refused or timed out); start `appliance scheduler` there, or check the address")
    args = security.get_connection_args(role) if security is not None else {}
    try:
        comm = await asyncio.wait_for(connect(address, timeout=timeout, **args),  # type: ignore[no-untyped-call]
                                      timeout + 1)
        await comm.close()
    except TimeoutError as exc:
        listening = _listening(address)
        what = ("something listens there but did not answer as a Dask scheduler within "
                f"{timeout:g} s (another program, or a TLS certificate the scheduler refused?)") if listening \
            else f"nothing answered within {timeout:g} s"
        raise ApplianceError(f"cannot reach the Dask scheduler at {address}: {what}; start `appliance scheduler` "
                             "there, or check the address and the certificates") from exc
    except OSError as exc:
        raise ApplianceError(f"cannot reach the Dask scheduler at {address} ({exc}): is `appliance scheduler` "
                             "running there, is its port reachable from this host, and was this certificate "
                             "signed by the fleet's CA?") from None


def _listening(address: str) -> bool:
    """Whether a TCP connection to ADDRESS (scheme://host:port) opens at all."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        return True
    except (OSError, ValueError):
        return False


def make_certs(folder: Path, days: int = DAYS) -> list[Path]:
    """A private CA in FOLDER and one key and certificate per role, signed by it (openssl,
    EC P-256); keys are readable by their owner alone. FOLDER must not hold them yet."""
    existing = [p for p in (folder / "ca.pem", *(folder / f"{r}.pem" for r in ROLES)) if p.exists()]
    if existing:
        raise ApplianceError(f"{existing[0]} exists: fleet-certs never overwrites a CA or a certificate; "
                             "give an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    proc.run(["openssl", "req", "-x509", *ec, "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem"),
              "-days", str(days), "-subj", "/CN=appliance fleet CA", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    made = [folder / "ca.pem"]
    for role in ROLES:
        key, request, cert = folder / f"{role}.key", folder / f"{role}.csr", folder / f"{role}.pem"
        proc.run(["openssl", "req", "-new", *ec, "-keyout", str(key), "-out", str(request),
                  "-subj", f"/CN=appliance fleet {role}"])
        extensions = folder / f"{role}.ext"
        extensions.write_text("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n")
        proc.run(["openssl", "x509", "-req", "-in", str(request), "-CA", str(folder / "ca.pem"),
                  "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-out", str(cert), "-days", str(days),
                  "-extfile", str(extensions)])
        request.unlink()
        extensions.unlink()
        made.append(cert)
    for key in folder.glob("*.key"):
        os.chmod(key, 0o600)
    return made

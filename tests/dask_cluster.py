"""A real Dask cluster for the tests: `appliance scheduler` and `appliance worker`
processes (the command-line programs) speaking mutual TLS with certificates from
`appliance fleet-certs`, on 127.0.0.1 only, on a free port; stopped by PID after."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT


def make_certs(folder: Path) -> Path:
    """A private CA and role certificates in FOLDER (`appliance fleet-certs`)."""
    done = subprocess.run([sys.executable, "-m", "appliance", "fleet-certs", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return folder


def tls_args(certs: Path, role: str) -> list[str]:
    return ["--tls-ca", str(certs / "ca.pem"), "--tls-cert", str(certs / f"{role}.pem"),
            "--tls-key", str(certs / f"{role}.key")]


def security(certs: Path, role: str = "client"):
    from distributed.security import Security

    return Security(tls_ca_file=str(certs / "ca.pem"), tls_client_cert=str(certs / f"{role}.pem"),
                    tls_client_key=str(certs / f"{role}.key"), require_encryption=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    address: str
    root: Path
    scheduler: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    def client_args(self) -> list[str]:
        """What a client verb needs to reach this cluster: its address and certificates."""
        return ["--cluster", self.address, *tls_args(self.certs, "client")]

    def cache(self, label: str) -> Path:
        return self.root / f"cache-{label}"

    def start_worker(self, label: str) -> None:
        with open(self.root / f"worker-{label}.log", "ab") as log:  # the worker keeps its own copy of the fd; a restart appends
            self.workers[label] = subprocess.Popen(
                [sys.executable, "-m", "appliance", "worker", self.address, "--name", label,
                 "--host-label", label, "--cache", str(self.cache(label)), *tls_args(self.certs, "worker")],
                cwd=ROOT, stdout=log, stderr=log)

    def wait_for(self, count: int, timeout: float = 90) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s", security=security(self.certs)) as client:
            client.wait_for_workers(count, timeout=timeout)

    def log(self, label: str) -> str:
        return (self.root / f"worker-{label}.log").read_text(errors="replace")

    def qemus(self, label: str) -> list[int]:
        """PIDs of QEMUs booting from LABEL's cache (still running, whoever their parent)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"qemu-system-x86_64") and str(self.cache(label)).encode() in b" ".join(argv):
                found.append(int(entry.name))
        return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_scheduler(root: Path, certs: Path) -> subprocess.Popen[bytes]:
    """`appliance scheduler` with CERTS on a free port of 127.0.0.1, once it listens (its
    port is the process' .port)."""
    port = _free_port()
    with open(root / "scheduler.log", "wb") as log:
        scheduler = subprocess.Popen([sys.executable, "-m", "appliance", "scheduler", "--port", str(port),
                                      *tls_args(certs, "scheduler")], cwd=ROOT, stdout=log, stderr=log)
    scheduler.port = port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return scheduler
        except OSError:
            if time.monotonic() > deadline or scheduler.poll() is not None:
                _stop(scheduler)
                raise RuntimeError("appliance scheduler did not start: " + (root / "scheduler.log").read_text()) from None
            time.sleep(0.2)


@contextmanager
def cluster(labels: list[str]) -> Iterator[Cluster]:
    """A scheduler and one `appliance worker` per label (its name and host label)."""
    root = Path(tempfile.mkdtemp(prefix="appliance-dask-"))
    scheduler = start_scheduler(root, make_certs(root / "certs"))
    running = Cluster(f"tls://127.0.0.1:{scheduler.port}", root, scheduler)  # type: ignore[attr-defined]
    try:
        for label in labels:
            running.start_worker(label)
        running.wait_for(len(labels))
        yield running
    finally:
        for process in running.workers.values():
            _stop(process)
        _stop(scheduler)
        shutil.rmtree(root, ignore_errors=True)

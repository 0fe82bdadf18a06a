"""The fleet's wire for real: an `appliance scheduler` with mutual TLS refuses a client
and a worker that have no certificate, or one signed by another CA, and accepts the
team's; it listens on 127.0.0.1 only, with no HTTP server beyond loopback."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.dask_cluster import _stop, make_certs, security, start_scheduler, tls_args


@pytest.fixture(scope="module")
def tls_scheduler(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    certs = make_certs(root / "certs")
    scheduler = start_scheduler(root, certs)
    try:
        yield f"tls://127.0.0.1:{scheduler.port}", certs, root
    finally:
        _stop(scheduler)


def listening_sockets(pid: int) -> list[str]:
    done = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True)
    return [line.split()[3] for line in done.stdout.splitlines() if f"pid={pid}," in line]


def test_the_teams_client_connects(tls_scheduler):
    from distributed import Client

    address, certs, _ = tls_scheduler
    with Client(address, timeout="20s", security=security(certs)) as client:
        assert client.scheduler_info()["address"] == address


def test_a_client_without_a_certificate_is_refused(tls_scheduler):
    from distributed import Client

    address, _, _ = tls_scheduler
    with pytest.raises((OSError, TimeoutError)):
        Client(address.replace("tls://", "tcp://"), timeout="5s")


def test_a_client_of_another_ca_is_refused(tls_scheduler, tmp_path):
    from distributed import Client

    address, _, _ = tls_scheduler
    stranger = make_certs(tmp_path / "other")
    with pytest.raises((OSError, TimeoutError)):
        Client(address, timeout="5s", security=security(stranger))


def test_a_worker_without_the_teams_certificate_cannot_join(tls_scheduler, tmp_path):
    address, _, _ = tls_scheduler
    stranger = make_certs(tmp_path / "other")
    done = subprocess.run([sys.executable, "-m", "appliance", "worker", address, *tls_args(stranger, "worker")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach the Dask scheduler at {address}")
    plain = subprocess.run([sys.executable, "-m", "appliance", "worker", address], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert plain.returncode == 1 and "no certificates were given" in plain.stderr.strip().splitlines()[-1]


def test_the_scheduler_listens_on_loopback_only(tls_scheduler):
    address, _, root = tls_scheduler
    scheduler_pids = [int(p) for p in subprocess.run(["pgrep", "-f", f"appliance scheduler --port {address.rsplit(':', 1)[1]}"],
                                                     capture_output=True, text=True).stdout.split()]
    assert scheduler_pids
    addresses = [a for pid in scheduler_pids for a in listening_sockets(pid)]
    assert addresses and all(a.startswith(("127.", "[::1]")) for a in addresses), addresses


def test_plain_tcp_beyond_loopback_is_refused_without_insecure():
    done = subprocess.run([sys.executable, "-m", "appliance", "scheduler", "--listen", "0.0.0.0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "anyone who can reach that port could run code" in done.stderr.strip().splitlines()[-1]


def test_a_port_that_is_not_dask_is_one_line_in_bounded_time(built):
    """Issue 36: the client waited 200 s on an HTTP server, 151 s on a silent listener."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "appliance", "bench", str(built["minimal"]), "-n", "1",
                               "--accel", "tcg", "--no-record", "--cluster", f"tcp://127.0.0.1:{port}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=90)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "did not answer as a Dask scheduler" in last, done.stderr

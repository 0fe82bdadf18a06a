"""The fleet's wire rule: TLS everywhere beyond loopback, plain TCP only on loopback or
with --insecure, and certificates given whole."""

import pytest

from appliance.errors import ApplianceError
from appliance.fleet import tls


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.9", "localhost", "[::1]", "::1"])
def test_loopback_hosts(host):
    assert tls.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.7", "scheduler", "[::]", "192.168.1.1", "::"])
def test_other_hosts_are_not_loopback(host):
    assert not tls.is_loopback(host)


def fake(tmp_path):
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("x")
    return tls.Tls(tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "c.key")


def test_plain_tcp_beyond_loopback_needs_insecure(tmp_path):
    tls.check_wire("--cluster", "tcp", "127.0.0.1", None, insecure=False)
    with pytest.raises(ApplianceError, match="anyone who can reach that port could run code"):
        tls.check_wire("--cluster", "tcp", "10.0.0.5", None, insecure=False)
    with pytest.raises(ApplianceError, match="anyone who can reach"):
        tls.check_wire("--listen", "tcp", "0.0.0.0", None, insecure=False)
    tls.check_wire("--cluster", "tcp", "10.0.0.5", None, insecure=True)
    tls.check_wire("--cluster", "tls", "10.0.0.5", fake(tmp_path), insecure=False)


def test_tls_without_certificates_and_tcp_with_them_are_refused(tmp_path):
    with pytest.raises(ApplianceError, match="no certificates were given"):
        tls.check_wire("--cluster", "tls", "10.0.0.5", None, insecure=True)
    with pytest.raises(ApplianceError, match="write tls://"):
        tls.check_wire("--cluster", "tcp", "127.0.0.1", fake(tmp_path), insecure=False)


def test_certificates_come_whole_from_options_or_the_environment(tmp_path, monkeypatch):
    files = fake(tmp_path)
    for name in tls.ENV.values():
        monkeypatch.delenv(name, raising=False)
    assert tls.from_options(None, None, None) is None
    assert tls.from_options(str(files.ca), str(files.cert), str(files.key)) == files
    with pytest.raises(ApplianceError, match=r"--tls-key \(APPLIANCE_TLS_KEY\) not given"):
        tls.from_options(str(files.ca), str(files.cert), None)
    monkeypatch.setenv("APPLIANCE_TLS_KEY", str(files.key))
    assert tls.from_options(str(files.ca), str(files.cert), None) == files
    with pytest.raises(ApplianceError, match="not a readable file"):
        tls.from_options(str(tmp_path / "nope.pem"), str(files.cert), None)


def test_fleet_certs_makes_a_ca_and_a_certificate_per_role_it_signed(tmp_path):
    from appliance import proc

    made = tls.make_certs(tmp_path / "certs")
    assert [p.name for p in made] == ["ca.pem", "scheduler.pem", "worker.pem", "client.pem"]
    for role in tls.ROLES:
        proc.run(["openssl", "verify", "-CAfile", str(tmp_path / "certs/ca.pem"), str(tmp_path / f"certs/{role}.pem")])
        assert (tmp_path / f"certs/{role}.key").stat().st_mode & 0o077 == 0  # the owner's alone
    with pytest.raises(ApplianceError, match="never overwrites"):
        tls.make_certs(tmp_path / "certs")

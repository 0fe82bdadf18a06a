"""The fleet's verbs: `fleet-certs` makes a private CA and a certificate per role, and
`worker` refuses a local cluster's address before it checks the host."""

import pytest

from appliance.cli import main as cli


def test_fleet_certs_makes_a_ca_and_each_roles_certificate_and_says_how_to_use_them(tmp_path, capsys):
    assert cli.main(["fleet-certs", str(tmp_path / "certs")]) == 0
    made = {p.name for p in (tmp_path / "certs").iterdir()}
    assert {"ca.pem", "ca.key", "worker.pem", "worker.key", "client.pem", "client.key"} <= made
    err = capsys.readouterr().err
    assert "--tls-ca" in err and "keep ca.key off the fleet" in err


@pytest.mark.parametrize(("argv", "said"), [
    (["worker", "local:2"], "a worker joins a running scheduler: give tls://HOST:PORT, not local:N"),
    (["scheduler", "--listen", "0.0.0.0", "--port", "0"], "plain tcp:// to 0.0.0.0"),
])
def test_fleet_verbs_refuse_in_one_line_before_they_start(argv, said, capsys):
    assert cli.main(argv) == 1
    assert said in capsys.readouterr().err

"""`appliance doctor` on this machine: every check runs, each line that is not ok says
what to do, and a machine ./setup prepared has nothing that fails."""

import json

from appliance.cli import doctor
from appliance.cli import main as cli


def test_a_set_up_machine_passes_and_every_warning_says_what_to_do(capsys):
    assert cli.main(["doctor", "--json"]) == 0  # one run: the KVM probe takes seconds where KVM hangs
    found = [(c["status"], c["line"]) for c in json.loads(capsys.readouterr().out)["checks"]]
    assert {line.split(":")[0] for _, line in found} >= set(doctor.TOOLS)  # every tool looked for
    assert not [line for status, line in found if status == doctor.FAIL]  # ./setup installs them all
    assert any(line.startswith("QEMU trace backend usable") for _, line in found)
    assert any("KVM" in line for _, line in found) and any("instruction clock" in line for _, line in found)
    for status, line in found:
        if status == doctor.WARN:
            assert ":" in line and len(line.split(":", 1)[1].strip()) > 10  # why, and what to do

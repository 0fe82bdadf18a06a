"""UEFI: the benchmark appliance built for q35-ovmf carries a UKI, which Debian's OVMF
boots under TCG; the firmware phase is measured (inferred from the trace)."""

import json

import pytest

from tests.conftest import BUILD, appliance, scons

pytestmark = pytest.mark.boot


def test_a_uki_boots_under_ovmf_and_its_firmware_phase_is_measured(tmp_path):
    done = scons("appliance", "TEMPLATE=benchmark", "MACHINE=q35-ovmf")
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = BUILD / "benchmark+q35-ovmf"
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["machine"] == "q35-ovmf" and "uki.efi" in manifest["files"]
    out = tmp_path / "r.json"
    ran = appliance("bench", str(bundle), "-n", "1", "--warmup", "0", "--accel", "tcg", "-o", str(out), timeout=600)
    assert ran.returncode == 0, ran.stderr
    run = json.loads(out.read_text())["runs"][0]
    sources = {e["name"]: e["source"] for e in run["events"]}
    assert sources["fw_entry"] == "trace-inferred" and sources["kernel_entry"] == "trace-inferred"
    assert sources["init_start"] == "trace" and "payload_end" in sources
    # OVMF under TCG takes seconds to reach the kernel; qboot takes milliseconds
    assert run["phases_ms"]["firmware"] > 500 and run["phases_ms"]["kernel"] > 0

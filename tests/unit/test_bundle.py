"""bundle.json: loading, the probe table, damaged bundles refused."""

from pathlib import Path

import pytest

from appliance import bundle
from appliance.errors import BundleError
from appliance.machines import Machine


def make_bundle(folder: Path) -> None:
    (folder / "kernel").write_bytes(b"K" * 100)
    (folder / "initrd").write_bytes(b"I" * 10)
    data = bundle.manifest(folder, name="t", cmdline="console=ttyS0", machine=Machine.MICROVM, memory_mib=64,
                           cpus=1, user_probes=((0x21, "mine"),), build={})
    bundle.write(folder, data)


def test_intact_bundle_loads_with_its_probe_table(tmp_path):
    make_bundle(tmp_path)
    b = bundle.load(tmp_path)
    assert b.machine is Machine.MICROVM and b.cmdline == "console=ttyS0"
    assert b.probe_table[(0xF4, 0x10)] == "init_start" and b.probe_table[(0xF4, 0x21)] == "mine"


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "initrd").write_bytes(b"J" * 10), "initrd does not match its sha256"),
    (lambda d: (d / "kernel").write_bytes(b"K" * 99), "kernel has 99 bytes"),
    (lambda d: (d / "kernel").unlink(), "kernel is missing"),
    (lambda d: (d / "bundle.json").write_text("{"), "not valid JSON"),
    (lambda d: (d / "bundle.json").write_text('{"format": 99}'), "format 99"),
    (lambda d: (d / "bundle.json").unlink(), "not a bundle"),
])
def test_damaged_bundles_are_refused(tmp_path, damage, message):
    make_bundle(tmp_path)
    damage(tmp_path)
    with pytest.raises(BundleError, match=message):
        bundle.load(tmp_path)

"""bundle.json: loading, the probe table, damaged bundles refused."""

from pathlib import Path

import pytest

from appliance import bundle
from appliance.errors import BundleError
from appliance.machines import Machine


def make_bundle(folder: Path) -> None:
    (folder / "kernel").write_bytes(b"K" * 100)
    (folder / "initrd").write_bytes(b"I" * 10)
    build = {"kernel": {"release": "6.1.0-test"}, "initrd": {"programs": {"init": 1}, "modules": {}}, "contents": []}
    bundle.write_manifest(folder, bundle.Spec(name="t", cmdline="console=ttyS0", cmdline_base="", machine=Machine.MICROVM,
                                              memory_mib=64, cpus=1, user_probes=((0x21, "mine"),), build=build))


def test_intact_bundle_loads_with_its_probe_table(tmp_path):
    make_bundle(tmp_path)
    b = bundle.load(tmp_path)
    assert b.machine is Machine.MICROVM and b.cmdline == "console=ttyS0"
    assert b.probe_table[(0xF4, 0x10)] == "init_start" and b.probe_table[(0xF4, 0x21)] == "mine"
    assert (b.name, b.memory_mib, b.cpus, b.kernel_release, b.has_our_init) == ("t", 64, 1, "6.1.0-test", True)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format=1), "has format 1, this tool reads format 2: rebuild the bundle"),
    (lambda m: m.pop("virtio_transports"), "lacks 'virtio_transports': rebuild the bundle"),
    (lambda m: m.update(build={}), "lacks its build facts"),
])
def test_a_manifest_of_another_format_is_refused_in_one_line(tmp_path, change, message):
    make_bundle(tmp_path)
    data = bundle.load(tmp_path).manifest.copy()
    change(data)
    bundle.write(tmp_path, data)  # sealed again, as a build of that format would have
    with pytest.raises(BundleError, match=message):
        bundle.load(tmp_path)


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


def test_a_manifest_edited_after_the_build_is_refused(tmp_path):
    import json

    make_bundle(tmp_path)
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    manifest["cmdline"] += " init=/bin/sh"
    (tmp_path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="was edited after the build"):
        bundle.load(tmp_path)
    del manifest["manifest_sha256"]
    (tmp_path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has no digest of its own"):
        bundle.load(tmp_path)


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "a/../../x", ""])
def test_file_names_that_leave_the_bundle_are_refused(tmp_path, name):
    import json

    make_bundle(tmp_path)
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    manifest["files"][name] = {"size": 1, "sha256": "0" * 64}
    bundle.write(tmp_path, manifest)  # sealed: only the name is wrong
    with pytest.raises(BundleError, match="leaves the bundle's directory|is not a path"):
        bundle.load(tmp_path)


def test_stray_files_are_listed(tmp_path):
    make_bundle(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "y").write_text("y")
    assert bundle.strays(bundle.load(tmp_path)) == ["notes.txt", "sub/y"]


def test_the_command_line_on_another_machine_is_its_words_then_the_bundles(tmp_path):
    make_bundle(tmp_path)
    b = bundle.load(tmp_path)
    on_pc = b.cmdline_on(Machine.PC_SEABIOS)
    assert on_pc.startswith("console=ttyS0") and "pci=off" not in on_pc  # microvm's own words are gone
    assert b.with_machine(Machine.PC_SEABIOS).cmdline == on_pc

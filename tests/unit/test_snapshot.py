"""A snapshot folder's manifest: sealed with its state's size and digest, loaded only
when both hold, and restorable only by a boot of the same bundle with the same VM."""

import json
import re

import pytest

from appliance import snapshot

VM = {"qemu_version": "7.2", "machine": "microvm", "memory_mib": 256, "cpus": 1, "cpu_model": "max", "accel": "tcg"}


def taken(folder, state=b"S" * 4096):
    folder.mkdir()
    (folder / snapshot.STATE).write_bytes(state)
    return snapshot.write(folder, bundle={"digest": "d" * 64, "name": "web"}, point="service_ready", vm=VM,
                          taken_ms=812.0)


def test_a_snapshot_loads_as_written_and_is_restorable_by_its_own_bundle_and_vm(tmp_path):
    taken(tmp_path / "s")
    loaded = snapshot.load(tmp_path / "s")
    assert (loaded.point, loaded.bundle_digest, loaded.state_bytes) == ("service_ready", "d" * 64, 4096)
    assert snapshot.problem(loaded, "d" * 64, VM) is None
    assert "another bundle" in snapshot.problem(loaded, "e" * 64, VM)
    assert snapshot.problem(loaded, "d" * 64, {**VM, "memory_mib": 512}) == \
        "it was taken with memory_mib 256, this boot has 512"


@pytest.mark.parametrize(("damage", "said"), [
    (lambda f: (f / snapshot.STATE).write_bytes(b"S" * 100), "has 100 bytes, the manifest says 4096 (truncated?)"),
    (lambda f: (f / snapshot.STATE).write_bytes(b"T" * 4096), "does not match its sha256"),
    (lambda f: (f / snapshot.STATE).unlink(), "has no state file"),
    (lambda f: (f / snapshot.MANIFEST).write_text(json.dumps({
        **json.loads((f / snapshot.MANIFEST).read_text()), "point": "payload_start"})), "edited after it was written"),
    (lambda f: (f / snapshot.MANIFEST).write_text("{"), "is not a snapshot manifest this tool reads"),
    (lambda f: (f / snapshot.MANIFEST).unlink(), "is not a snapshot (no"),
])
def test_a_damaged_snapshot_is_one_line_that_says_take_it_again(tmp_path, damage, said):
    taken(tmp_path / "s")
    damage(tmp_path / "s")
    with pytest.raises(snapshot.SnapshotError, match=re.escape(said)):
        snapshot.load(tmp_path / "s")

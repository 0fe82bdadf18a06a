"""Bundles shipped by digest: verified on arrival, damaged or changed pieces refused and sent again."""

import hashlib

import pytest

from appliance import bundle as bundles
from appliance.errors import BundleError
from appliance.fleet import ship


def _bundle(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "kernel").write_bytes(b"k" * 100)
    (folder / "initrd").write_bytes(b"i" * 50)
    files = {n: bundles.file_entry(folder / n) for n in ("kernel", "initrd")}
    data = {"format": bundles.FORMAT, "name": "t", "files": files, "disks": [], "cmdline": "console=ttyS0",
            "cmdline_base": "", "machine": "microvm", "arch": "x86_64", "memory_mib": 256, "cpus": 1, "probes": [],
            "virtio_transports": [], "kernel_acpi": True, "device_tree": None, "network": None, "service": None,
            "profiled": None, "build": {"kernel": {}, "initrd": {}, "contents": []}}
    bundles.write(folder, data)
    return bundles.load(folder)


def test_a_bundle_travels_by_digest_and_lands_verified(tmp_path):
    target = _bundle(tmp_path)
    derived = tmp_path / "pvh-kernel"
    derived.write_bytes(b"derived")
    ref, where = ship.ref_of(target.with_kernel(derived))
    assert ref.digest == target.digest and set(where) == set(ref.pieces)
    cache = tmp_path / "cache"
    assert ship.missing(cache, ref.pieces) == ref.pieces
    for digest in ref.pieces:
        ship.receive(cache, digest, ship.pack(where[digest]))
    assert ship.missing(cache, ref.pieces) == []
    landed = ship.materialize(cache, ref)
    assert landed.kernel.read_bytes() == b"derived" and landed.initrd.read_bytes() == b"i" * 50
    assert landed.digest == target.digest



def test_damaged_pieces_are_refused_and_leave_nothing(tmp_path):
    target = _bundle(tmp_path)
    cache = tmp_path / "cache"
    files = ship.pack(target.path)
    files["initrd"] = b"x" * 50  # same size, other bytes
    with pytest.raises(BundleError, match="arrived damaged.*initrd"):
        ship.receive(cache, target.digest, files)
    with pytest.raises(BundleError, match="another digest"):
        ship.receive(cache, "0" * 64, ship.pack(target.path))
    with pytest.raises(BundleError, match="does not match that sha256"):
        ship.receive(cache, hashlib.sha256(b"a").hexdigest(), b"b")
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(BundleError, match="not in this worker's cache"):
        ship.materialize(cache, ship.ref_of(target)[0])



def test_a_piece_changed_in_the_cache_is_never_booted(tmp_path):
    """Issue 36: an initrd replaced in a worker's cache after it arrived was booted and
    credited to the original's digest. Now it is thrown out and asked for again."""
    target = _bundle(tmp_path)
    derived = tmp_path / "pvh-kernel"
    derived.write_bytes(b"derived")
    ref, where = ship.ref_of(target.with_kernel(derived))
    cache = tmp_path / "cache"
    for digest in ref.pieces:
        ship.receive(cache, digest, ship.pack(where[digest]))
    (tmp_path / "cache" / target.digest / "initrd").write_bytes(b"I" * 50)  # same size, another appliance
    (tmp_path / "cache" / ref.extras[0][1]).write_bytes(b"tampered")
    with pytest.raises(ship.MissingPieces) as raised:
        ship.materialize(cache, ref)
    assert target.digest[:12] in str(raised.value) and ref.extras[0][1][:12] in str(raised.value)
    assert ship.missing(cache, ref.pieces) == ref.pieces  # both go, so the client sends them again
    for digest in ref.pieces:
        ship.receive(cache, digest, ship.pack(where[digest]))
    assert ship.materialize(cache, ref).initrd.read_bytes() == b"i" * 50

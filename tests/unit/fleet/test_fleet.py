"""The fleet's pure parts: addresses, waves of blocks, shipping by digest, host strata."""

import hashlib
import random

import pytest

from appliance import bundle as bundles
from appliance.errors import ApplianceError, BundleError
from appliance.fleet import address, cluster, ship
from appliance.runs import compare
from appliance.stats import stratified_p, stratified_ratio, stratified_ratio_ci


def test_addresses_a_scheduler_or_a_local_cluster():
    assert address.parse("tcp://10.0.0.5:8786") == address.Address("tcp://10.0.0.5:8786")
    assert address.parse(" local:3 ").local_workers == 3 and address.parse("local:3").local
    assert str(address.parse("local:2")) == "local:2"


@pytest.mark.parametrize("bad", ["8786", "tcp://host", "http://h:1", "local:0", "local:x", "tcp://h:99999", "local:65"])
def test_bad_addresses_say_what_one_looks_like(bad):
    with pytest.raises(ApplianceError, match="tls://HOST:PORT|local:N takes"):
        address.parse(bad)


def test_rounds_split_into_whole_blocks_per_worker():
    assert cluster.split(8, 2) == [4, 4]
    assert cluster.split(7, 3) == [3, 2, 2]
    assert cluster.split(1, 4) == [1]  # never an empty block
    assert sum(cluster.split(23, 5)) == 23


def test_waves_end_at_looks_and_keep_every_worker_busy():
    assert cluster.wave_ends(0, 8, [8], 2) == [8]
    assert cluster.wave_ends(0, 24, [8, 16, 24], 2) == [8, 16, 24]
    # tune looks after every round to save: waves still give each worker a round
    assert cluster.wave_ends(0, 6, range(1, 7), 3) == [3, 6]
    assert cluster.wave_ends(4, 8, [8], 2) == [8]  # a resumed run goes on from where it was
    assert cluster.wave_ends(8, 8, [8], 2) == []


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


def test_stratified_statistics_pool_hosts_of_different_speed():
    rng = random.Random(4)
    fast = ([100 + rng.uniform(-2, 2) for _ in range(8)], [90 + rng.uniform(-2, 2) for _ in range(8)])
    slow = ([300 + rng.uniform(-6, 6) for _ in range(8)], [270 + rng.uniform(-6, 6) for _ in range(8)])
    assert stratified_ratio([fast, slow]) == pytest.approx(0.9, abs=0.02)
    ci = stratified_ratio_ci([fast, slow])
    assert ci[1] < 1 and stratified_p([fast, slow]) < 0.001
    # the same values pooled without strata: the hosts' spread blurs the difference
    from appliance.stats import permutation_p
    assert permutation_p(fast[0] + slow[0], fast[1] + slow[1]) > 10 * stratified_p([fast, slow])


def _runs(host, values):
    return [{"ok": True, "warmup": False, "worker": {"host_name": host}, "phases_ms": {"to_init": v}} for v in values]


def test_compare_blocks_by_host_and_flags_hosts_that_disagree():
    rng = random.Random(9)
    a = _runs("h1", [100 + rng.uniform(-1, 1) for _ in range(8)]) + _runs("h2", [200 + rng.uniform(-2, 2) for _ in range(8)])
    b = _runs("h1", [80 + rng.uniform(-1, 1) for _ in range(8)]) + _runs("h2", [240 + rng.uniform(-2, 2) for _ in range(8)])
    result = compare.compare(a, b)
    assert [h["host"] for h in result["hosts"]] == ["h1", "h2"]
    assert result["hosts"][0]["ci"][1] < 1 < result["hosts"][1]["ci"][0]
    assert result["hosts_disagree"] and "blocked by host" in result["method"]
    assert "the hosts disagree" in compare.comparison_table(result)
    one_host = compare.compare(_runs("h1", [100.0, 101, 99, 100]), _runs("h1", [100.0, 99, 101, 100]))
    assert "hosts" not in one_host

"""Release archives: determinism, verification and refusal of hostile archives."""

import io
import json
import tarfile

import pytest
import zstandard

from appliance import bundle
from appliance.assemble import release
from appliance.errors import BundleError
from tests.unit.test_bundle import make_bundle


def zst_tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return zstandard.ZstdCompressor().compress(out.getvalue())


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(data) if kind == tarfile.REGTYPE else 0, link
    return info, data if kind == tarfile.REGTYPE else b""


@pytest.mark.parametrize("members, message", [
    ([entry("b/ok"), entry("b/../../evil")], "would escape"),
    ([entry("/etc/evil")], "would escape"),
    ([entry("b/ok"), entry("b/link", tarfile.SYMTYPE, link="/etc/passwd")], "is a link or device"),
    ([entry("b/ok"), entry("b/hard", tarfile.LNKTYPE, link="../../x")], "is a link or device"),
    ([entry("b/ok"), entry("b/dev", tarfile.CHRTYPE)], "is a link or device"),
    ([entry("b/ok"), entry("c/other")], "outside the archive's top directory"),
])
def test_hostile_archives_are_refused_and_write_nothing_outside(tmp_path, members, message):
    archive = tmp_path / "bad.tar.zst"
    archive.write_bytes(zst_tar(members))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(BundleError, match=message):
        release.unpack_tar_zst(archive, target)
    assert not (tmp_path / "evil").exists() and list(target.iterdir()) == []


def test_truncated_and_garbage_archives_are_reported(tmp_path):
    bundle_dir = tmp_path / "t"
    bundle_dir.mkdir()
    make_bundle(bundle_dir)
    archive = tmp_path / "t.tar.zst"
    release.make_tar_zst(bundle_dir, archive, 0)
    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(BundleError, match="truncated or damaged"):
        release.verify(archive)
    archive.write_bytes(b"not zstd at all")
    with pytest.raises(BundleError, match="not a valid zstd archive"):
        release.verify(archive)


def test_archive_is_deterministic_and_verifies(tmp_path):
    bundle_dir = tmp_path / "t"
    bundle_dir.mkdir()
    make_bundle(bundle_dir)
    first, second = tmp_path / "a" / "t.tar.zst", tmp_path / "b" / "t.tar.zst"
    release.make_tar_zst(bundle_dir, first, 1_700_000_000)
    (bundle_dir / "kernel").touch()  # a new mtime must not change the archive
    release.make_tar_zst(bundle_dir, second, 1_700_000_000)
    assert first.read_bytes() == second.read_bytes()
    assert release.verify(first) == []
    raw = zstandard.ZstdDecompressor().decompress(first.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == ["t", "t/bundle.json", "t/initrd", "t/kernel"]
    assert {(i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos} == {(0, 0, "", "", 1_700_000_000)}
    assert str(tmp_path).encode() not in raw


def test_tampered_and_foreign_files_are_named(tmp_path):
    bundle_dir = tmp_path / "t"
    bundle_dir.mkdir()
    make_bundle(bundle_dir)
    (bundle_dir / "initrd").write_bytes(b"J" * 10)  # same size, other bytes
    (bundle_dir / "extra").write_bytes(b"?")
    archive = tmp_path / "t.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(release.tar_bytes(bundle_dir, "t", 0)))
    assert release.verify(archive) == ["initrd does not match its sha256 in bundle.json",
                                       "extra is not in bundle.json (foreign file)"]
    assert json.loads((bundle_dir / "bundle.json").read_text())["format"] == bundle.FORMAT


def test_an_archive_that_expands_past_the_limit_is_refused_and_leaves_nothing(tmp_path):
    # 64 MiB of zeros compress to a few KiB: with a 16 MiB limit the unpacking stops at
    # the member that passes it, streaming, and the staging folder is removed
    big = tarfile.TarInfo("b/zeros")
    big.size = 64 << 20
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.addfile(big, io.BytesIO(bytes(big.size)))
    archive = tmp_path / "bomb.tar.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(out.getvalue()))
    assert archive.stat().st_size < 1 << 20
    target = tmp_path / "out"
    with pytest.raises(BundleError, match="expands to more than"):
        release.unpack_tar_zst(archive, target, limit=16 << 20)
    assert list(target.iterdir()) == []


def test_an_initrd_that_claims_gigabytes_is_not_expanded():
    from appliance.assemble import compress
    from appliance.errors import ApplianceError

    small = zstandard.ZstdCompressor().compress(bytes(8 << 20))
    with pytest.raises(ApplianceError, match="does not expand within 1 MiB"):
        compress.decompress(small, limit=1 << 20)


@pytest.mark.parametrize("members, message", [
    # a 32 MiB kernel where bundle.json says 100 bytes: refused before a byte of it is written
    ([entry("b/bundle.json", data=json.dumps({"files": {"kernel": {"size": 100}}}).encode()),
      entry("b/kernel", data=bytes(32 << 20))], "kernel is 33554432 bytes, its bundle.json says 100"),
    # a big member before the manifest, or one the manifest does not list
    ([entry("b/aaa", data=bytes(2 << 20)), entry("b/bundle.json", data=b"{}")], "before its bundle.json"),
    ([entry("b/bundle.json", data=json.dumps({"files": {}}).encode()), entry("b/zzz", data=bytes(2 << 20))],
     "is not in its bundle.json"),
])
def test_an_archive_is_capped_by_what_its_bundle_json_says(tmp_path, members, message):
    archive = tmp_path / "bomb.tar.zst"
    archive.write_bytes(zst_tar(members))
    target = tmp_path / "out"
    with pytest.raises(BundleError, match=message):
        release.unpack_tar_zst(archive, target)
    written = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    assert written < 1 << 20  # nothing big left behind (the staging folder is gone)

import pytest

from appliance.fsutil import Growing, atomic_path


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "artifact"
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("tool failed")
    assert out.read_bytes() == b"whole" and sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


def test_a_sealed_tree_catches_a_truncated_or_edited_file(tmp_path):
    from appliance.fsutil import seal, sealed, unsealed_change

    (tmp_path / "boot").mkdir()
    image = tmp_path / "boot" / "vmlinuz"
    image.write_bytes(b"K" * 4096)
    (tmp_path / "other").write_text("x")
    assert not sealed(tmp_path)
    seal(tmp_path)
    assert sealed(tmp_path) and unsealed_change(tmp_path, image) is None
    image.write_bytes(b"K" * 2048)  # truncated to half
    assert "does not match the digest recorded" in unsealed_change(tmp_path, image)
    image.unlink()
    assert unsealed_change(tmp_path, image) == "boot/vmlinuz is missing"
    (tmp_path / "new").write_text("y")
    assert "was not in" in unsealed_change(tmp_path, tmp_path / "new")


def test_growing_reads_only_what_was_added(tmp_path):
    log = Growing(tmp_path / "console.log")
    assert log.read() == b""  # not there yet
    (tmp_path / "console.log").write_bytes(b"first ")
    assert log.read() == b"first "
    assert log.read() == b""
    with open(tmp_path / "console.log", "ab") as out:
        out.write(b"second\n")
    assert log.read() == b"second\n"


def test_copy_sparse_keeps_the_bytes_and_the_holes(tmp_path):
    from appliance.fsutil import copy_sparse

    src = tmp_path / "image"
    with open(src, "wb") as out:
        out.write(b"head")
        out.seek(8 << 20)
        out.write(b"middle" * 1000)
        out.truncate(32 << 20)  # a hole at the end too
    dst = tmp_path / "copy"
    copy_sparse(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_blocks * 512 < 1 << 20  # 32 MiB long, a few blocks on disk

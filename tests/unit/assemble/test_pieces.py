"""The initramfs as concatenated pieces: the split (each piece with the directories its
files need), the same files as one archive would hold, the cache (a warm build compresses
nothing, a changed piece is the only one compressed again), the level for the whole."""

import pytest

from appliance.assemble import cpio, layout, pieces
from appliance.assemble.compress import Compression, decompress
from appliance.assemble.layout import Placed


def tree(python: bytes = b"\x7fELF python" * 100) -> list[Placed]:
    return layout.merge([
        Placed(cpio.file("init", b"init" * 50, 0o755), "init"),
        Placed(cpio.file("etc/appliance/init.conf", b"payload /usr/bin/python3\n"), "init"),
        Placed(cpio.file("lib/modules/6.1/virtio_blk.ko", b"ko" * 300), "kernel module virtio_blk"),
        Placed(cpio.directory("usr", 0o755), "debian libc6=2.36"),
        Placed(cpio.directory("usr/lib", 0o700), "debian libc6=2.36"),  # an odd mode a later piece must keep
        Placed(cpio.file("usr/lib/libc.so.6", b"libc" * 400, 0o755), "debian libc6=2.36"),
        Placed(cpio.file("usr/lib/libpython.so", python, 0o644), "debian python3.11=3.11.2"),
        Placed(cpio.symlink("usr/bin/python3", "python3.11"), "debian python3.11=3.11.2"),
        Placed(cpio.file("usr/bin/ls", b"ls" * 100, 0o755), "host /usr/bin/ls"),
    ])


def test_pieces_come_in_a_fixed_order_and_carry_the_directories_above_their_files():
    split = dict(pieces.split(tree()))
    assert list(split) == ["appliance", "modules", "host", "debian libc6=2.36", "debian python3.11=3.11.2"]
    python = {e.path: e for e in split["debian python3.11=3.11.2"]}
    assert python["usr/lib"].mode & 0o777 == 0o700  # as the tree has it, not a default 0755
    assert {"usr", "usr/lib", "usr/lib/libpython.so", "usr/bin/python3"} <= set(python)
    assert pieces.piece_of("oci:sha256:ab") == "oci:sha256:ab" and pieces.piece_of("network") == "appliance"


@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.NONE])
def test_the_pieces_unpack_to_the_files_one_archive_holds(kind):
    data, raw_size, made = pieces.archive(tree(), 1000, kind)
    whole = cpio.read(cpio.write([p.entry for p in tree()], 1000))
    got = cpio.read(decompress(data))
    assert sorted((e.path, e.mode, e.data) for e in got) == sorted((e.path, e.mode, e.data) for e in whole)
    assert raw_size == sum(p.raw_bytes for p in made) and len(data) == sum(p.bytes for p in made)
    assert [p.files for p in made] == [2, 1, 1, 1, 1]
    if kind is Compression.ZSTD:
        assert data.count(b"\x28\xb5\x2f\xfd") >= len(made)  # one frame per piece


def test_a_warm_build_compresses_nothing_and_a_changed_piece_alone_is_compressed_again(tmp_path):
    first, _, made = pieces.archive(tree(), 1000, Compression.ZSTD, cache=tmp_path)
    assert not any(p.cached for p in made)
    again, _, warm = pieces.archive(tree(), 1000, Compression.ZSTD, cache=tmp_path)
    assert again == first and all(p.cached for p in warm)
    changed, _, after = pieces.archive(tree(b"\x7fELF python 3.11.9" * 100), 1000, Compression.ZSTD, cache=tmp_path)
    assert [p.name for p in after if not p.cached] == ["debian python3.11=3.11.2"]
    cold, _, _ = pieces.archive(tree(b"\x7fELF python 3.11.9" * 100), 1000, Compression.ZSTD)  # no cache at all
    assert cold == changed  # a piece from the cache is the same bytes as one compressed now


def test_one_level_for_every_piece_chosen_by_the_whole_size(tmp_path, monkeypatch):
    levels = []
    monkeypatch.setattr(pieces, "compress", lambda raw, kind, level: levels.append(level) or raw)
    pieces.archive(tree(), 0, Compression.ZSTD)
    assert set(levels) == {19}  # a small tree
    monkeypatch.setattr(pieces, "default_level", lambda size: 9 if size > 1000 else 19)
    levels.clear()
    pieces.archive(tree(), 0, Compression.ZSTD)
    assert set(levels) == {9}  # every piece is small; the whole is not


def test_image_layers_come_in_the_order_of_their_first_path_whatever_their_digests():
    def layers(first: str, second: str) -> list[Placed]:
        return layout.merge([Placed(cpio.file("init", b"i", 0o755), "init"),
                             Placed(cpio.file("bin/busybox", b"bb", 0o755), f"oci:sha256:{first}"),
                             Placed(cpio.file("etc/msg", b"hi"), f"oci:sha256:{second}")])

    # the same image as an OCI layout (compressed blobs) and as a docker archive (plain tars)
    blobs, tars = layers("ff", "00"), layers("11", "ee")
    assert [n for n, _ in pieces.split(blobs)] == ["appliance", "oci:sha256:ff", "oci:sha256:00"]
    assert pieces.archive(blobs, 0, Compression.ZSTD)[0] == pieces.archive(tars, 0, Compression.ZSTD)[0]

"""The Debian kernel: version from a bzImage's setup header."""

from pathlib import Path

from appliance.assemble.kernelfetch import bzimage_version


def test_bzimage_version_from_setup_header():
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    head[0x20E:0x210] = (0x400).to_bytes(2, "little")
    head[0x600:0x620] = b"6.1.0-56-amd64 (debian@x) #1\0\0\0\0"
    assert bzimage_version(bytes(head)) == "6.1.0-56-amd64"
    assert bzimage_version(b"\0" * 0x1000) is None


def test_only_kernel_images_are_accepted_as_kernel(tmp_path):
    import pytest

    from appliance.assemble import kernelfetch
    from appliance.errors import KernelError

    with pytest.raises(KernelError, match="is not a kernel image"):
        kernelfetch.own_kernel(Path("/etc/passwd"))
    with pytest.raises(KernelError, match="is a directory"):
        kernelfetch.own_kernel(tmp_path)
    with pytest.raises(KernelError, match="does not exist"):
        kernelfetch.own_kernel(tmp_path / "nope")
    head = bytearray(0x1000)
    head[0x1FE:0x200] = b"\x55\xaa"
    head[0x202:0x206] = b"HdrS"
    (tmp_path / "bzImage").write_bytes(bytes(head))
    assert kernelfetch.own_kernel(tmp_path / "bzImage").image == tmp_path / "bzImage"
    assert kernelfetch.image_kind(b"\x7fELF\x02\x01\x01") == "elf" and kernelfetch.image_kind(b"root:x:0:0") is None


def test_a_damaged_cached_module_discards_the_tree(tmp_path):
    import pytest

    from appliance.assemble import kernelfetch
    from appliance.errors import KernelError
    from appliance.fsutil import seal

    module = tmp_path / "lib" / "modules" / "6.1" / "virtio_blk.ko"
    module.parent.mkdir(parents=True)
    module.write_bytes(b"\x7fELF" + b"m" * 100)
    seal(tmp_path)
    (tmp_path / kernelfetch.MARKER).write_text("digest\n")
    files = kernelfetch.KernelFiles(tmp_path / "vmlinuz", module.parent, "6.1", tmp_path)
    kernelfetch.check_cached(files, module)  # intact: no error
    module.write_bytes(b"\x7fELF")
    with pytest.raises(KernelError, match="virtio_blk.ko does not match .* build again to fetch it anew"):
        kernelfetch.check_cached(files, module)
    assert not (tmp_path / kernelfetch.MARKER).exists()  # the next build fetches the package again


def test_a_cached_kernel_image_cut_in_half_is_not_complete(tmp_path, capsys):
    from appliance.assemble import kernelfetch
    from appliance.fsutil import seal

    lock = kernelfetch.KernelLock("linux-image-x", "1", "6.1.0-x", "d" * 64)
    image = tmp_path / "boot" / "vmlinuz-6.1.0-x"
    image.parent.mkdir()
    image.write_bytes(b"K" * 8192)
    (tmp_path / kernelfetch.MARKER).write_text(lock.deb_sha256 + "\n")
    assert not kernelfetch._complete(tmp_path, lock)  # unpacked before trees were sealed: fetched again
    seal(tmp_path)
    assert kernelfetch._complete(tmp_path, lock)
    image.write_bytes(b"K" * 4096)
    assert not kernelfetch._complete(tmp_path, lock)
    assert "is damaged" in capsys.readouterr().err


def elf_with_notes(*notes: tuple[bytes, int, bytes]) -> bytes:
    """A minimal ELF64 whose one PT_NOTE segment holds NOTES (name, type, desc)."""
    import struct

    body = b""
    for name, kind, desc in notes:
        pad = lambda b: b + b"\0" * (-len(b) % 4)  # noqa: E731
        body += struct.pack("<III", len(name), len(desc), kind) + pad(name) + pad(desc)
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, 64, 0, 0,
                                                              64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 4, 120, 0, 0, len(body), len(body), 4)
    return header + phdr + body


def fake_bzimage(payload: bytes) -> bytes:
    import struct

    head = bytearray(0x1000)
    head[0x1F1] = 4  # setup sectors: the protected-mode part starts at (4 + 1) * 512
    head[0x1FE:0x200] = b"\x55\xaa"
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<II", head, 0x248, 16, len(payload))
    return bytes(head[:0xA00]) + bytes(16) + payload


def test_a_bzimage_decompresses_to_its_pvh_kernel_or_says_why_not():
    import lzma

    import pytest

    from appliance.assemble import kernelfetch
    from appliance.errors import KernelError

    pvh = elf_with_notes((b"Xen\0", 6, b"linux\0"), (b"Xen\0", kernelfetch.PVH_NOTE, b"\x50\x08\x00\x01\0\0\0\0"))
    assert kernelfetch.has_pvh_note(pvh) and not kernelfetch.has_pvh_note(elf_with_notes((b"Xen\0", 6, b"linux\0")))
    assert kernelfetch.pvh_vmlinux(fake_bzimage(lzma.compress(pvh, format=lzma.FORMAT_XZ))) == pvh
    with pytest.raises(KernelError, match="no PVH entry note"):
        kernelfetch.pvh_vmlinux(fake_bzimage(lzma.compress(elf_with_notes(), format=lzma.FORMAT_XZ)))
    with pytest.raises(KernelError, match="unknown compression"):
        kernelfetch.pvh_vmlinux(fake_bzimage(b"\x00\x01\x02\x03" * 4))
    with pytest.raises(KernelError, match="not a bzImage"):
        kernelfetch.pvh_vmlinux(pvh)

"""The Debian kernel: version from a bzImage's setup header."""

from pathlib import Path

from appliance.build.kernel import bzimage_version


def test_bzimage_version_from_setup_header():
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    head[0x20E:0x210] = (0x400).to_bytes(2, "little")
    head[0x600:0x620] = b"6.1.0-56-amd64 (debian@x) #1\0\0\0\0"
    assert bzimage_version(bytes(head)) == "6.1.0-56-amd64"
    assert bzimage_version(b"\0" * 0x1000) is None


def test_only_kernel_images_are_accepted_as_kernel(tmp_path):
    import pytest

    from appliance.build import kernel
    from appliance.errors import KernelError

    with pytest.raises(KernelError, match="is not a kernel image"):
        kernel.own_kernel(Path("/etc/passwd"))
    with pytest.raises(KernelError, match="is a directory"):
        kernel.own_kernel(tmp_path)
    with pytest.raises(KernelError, match="does not exist"):
        kernel.own_kernel(tmp_path / "nope")
    head = bytearray(0x1000)
    head[0x1FE:0x200] = b"\x55\xaa"
    head[0x202:0x206] = b"HdrS"
    (tmp_path / "bzImage").write_bytes(bytes(head))
    assert kernel.own_kernel(tmp_path / "bzImage").image == tmp_path / "bzImage"
    assert kernel.image_kind(b"\x7fELF\x02\x01\x01") == "elf" and kernel.image_kind(b"root:x:0:0") is None


def test_a_damaged_cached_module_discards_the_tree(tmp_path):
    import pytest

    from appliance.build import kernel
    from appliance.errors import KernelError
    from appliance.fsutil import seal

    module = tmp_path / "lib" / "modules" / "6.1" / "virtio_blk.ko"
    module.parent.mkdir(parents=True)
    module.write_bytes(b"\x7fELF" + b"m" * 100)
    seal(tmp_path)
    (tmp_path / kernel.MARKER).write_text("digest\n")
    files = kernel.KernelFiles(tmp_path / "vmlinuz", module.parent, "6.1", tmp_path)
    kernel.check_cached(files, module)  # intact: no error
    module.write_bytes(b"\x7fELF")
    with pytest.raises(KernelError, match="virtio_blk.ko does not match .* build again to fetch it anew"):
        kernel.check_cached(files, module)
    assert not (tmp_path / kernel.MARKER).exists()  # the next build fetches the package again


def test_a_cached_kernel_image_cut_in_half_is_not_complete(tmp_path, capsys):
    from appliance.build import kernel
    from appliance.fsutil import seal

    lock = kernel.KernelLock("linux-image-x", "1", "6.1.0-x", "d" * 64)
    image = tmp_path / "boot" / "vmlinuz-6.1.0-x"
    image.parent.mkdir()
    image.write_bytes(b"K" * 8192)
    (tmp_path / kernel.MARKER).write_text(lock.deb_sha256 + "\n")
    assert not kernel._complete(tmp_path, lock)  # unpacked before trees were sealed: fetched again
    seal(tmp_path)
    assert kernel._complete(tmp_path, lock)
    image.write_bytes(b"K" * 4096)
    assert not kernel._complete(tmp_path, lock)
    assert "is damaged" in capsys.readouterr().err

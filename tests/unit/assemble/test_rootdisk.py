import struct

from appliance.assemble import rootdisk


def test_fletcher64_matches_the_kernel_definition():
    # nd_fletcher64: lo32 wraps at 32 bits, hi32 accumulates lo32, result hi32 << 32 | lo32
    words = [0xFFFFFFFF, 2, 3]
    block = struct.pack("<3I", *words)
    low = high = 0
    for word in words:
        low = (low + word) % 2**32
        high += low
    assert rootdisk.fletcher64(block) == (high << 32 | low) % 2**64


def test_pfn_info_block_fields_and_checksum():
    block = rootdisk.pfn_info_block(64 << 20, b"u" * 16)
    assert len(block) == 4096 and block.startswith(b"NVDIMM_PFN_INFO\0")
    sig, uuid, parent, flags, major, minor, dataoff, npfns, mode, start_pad, end_trunc, align, page, page_struct = \
        struct.unpack_from("<16s16s16sIHHQQIIIIIH", block)
    assert parent == bytes(16) and flags == 0 and (major, minor) == (1, 4)
    assert dataoff == align == 2 << 20 and npfns == (62 << 20) // 4096 and mode == rootdisk.PFN_MODE_RAM
    assert (start_pad, end_trunc, page, page_struct) == (0, 0, 4096, 64)
    (checksum,) = struct.unpack_from("<Q", block, 4088)
    assert checksum == rootdisk.fletcher64(block[:4088] + bytes(8))


def test_a_root_image_is_kept_by_its_tree_and_settings_and_made_again_when_either_changes(tmp_path):
    from appliance.assemble import cpio

    tree = [cpio.directory("usr"), cpio.file("usr/bin/tool", b"\x7fELF tool", 0o755), cpio.symlink("bin", "usr/bin")]
    cache = tmp_path / "cache"
    first, second = tmp_path / "a.img", tmp_path / "b.img"
    assert not rootdisk.make_root(tree, first, 1000, erofs=True, pmem=False, size_mib=8, cache=cache)
    assert rootdisk.make_root(tree, second, 1000, erofs=True, pmem=False, size_mib=8, cache=cache)
    assert second.read_bytes() == first.read_bytes()
    fresh = tmp_path / "fresh.img"  # no cache at all: the same bytes, made now
    assert not rootdisk.make_root(tree, fresh, 1000, erofs=True, pmem=False, size_mib=8)
    assert fresh.read_bytes() == first.read_bytes()
    changed = [*tree[:1], cpio.file("usr/bin/tool", b"\x7fELF tool 2", 0o755), tree[2]]
    assert not rootdisk.make_root(changed, tmp_path / "c.img", 1000, erofs=True, pmem=False, size_mib=8, cache=cache)
    assert not rootdisk.make_root(tree, tmp_path / "d.img", 1000, erofs=False, pmem=False, size_mib=8, cache=cache)
    assert len(list(cache.glob("rootfs-*.img"))) == 3 and not list(cache.glob(".*"))

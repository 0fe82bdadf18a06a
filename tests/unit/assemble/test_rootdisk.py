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

"""The Unified Kernel Image's layout: its sections after the stub's, page-aligned, and a
PE image restamped with the build's time and a right checksum."""

import pytest

from appliance.assemble import uki

OBJDUMP = """
/usr/lib/systemd/boot/efi/linuxx64.efi.stub:     file format pei-x86-64

Sections:
Idx Name          Size      VMA               LMA               File off  Algn
  0 .text         0000bff0  0000000000004000  0000000000004000  00000400  2**4
                  CONTENTS, ALLOC, LOAD, READONLY, CODE
  6 .sbat         000000e2  0000000000019000  0000000000019000  00011000  2**2
  7 .sdmagic      00000034  0000000000019100  0000000000019100  00011200  2**2
"""


def test_the_ukis_sections_follow_the_stubs_page_aligned():
    end = uki.stub_end(OBJDUMP)
    assert end == 0x19134
    assert uki.place(end, [0x40, 0x1C, 0x7DD7C0, 0x2F61]) == [0x1A000, 0x1B000, 0x1C000, 0x7FA000]
    with pytest.raises(Exception, match="reinstall systemd-boot-efi"):
        uki.stub_end("no sections here")


def test_a_pe_image_is_restamped_with_a_right_checksum():
    # a minimal PE: "MZ", e_lfanew at 0x3c pointing at 0x40, "PE\0\0", a COFF header, an optional header
    image = bytearray(0x200)
    image[:2] = b"MZ"
    image[0x3C:0x40] = (0x40).to_bytes(4, "little")
    image[0x40:0x44] = b"PE\0\0"
    image[0x48:0x4C] = (1796545934).to_bytes(4, "little")  # objcopy's clock
    image[0x100:0x110] = bytes(range(16))
    stamped = uki.restamp(bytes(image), 1234)
    assert int.from_bytes(stamped[0x48:0x4C], "little") == 1234
    field = 0x40 + 24 + 64
    assert int.from_bytes(stamped[field:field + 4], "little") == uki.pe_checksum(stamped, field)
    assert uki.restamp(bytes(image), 1234) == stamped  # the same input, the same bytes

"""UEFI: the q35-ovmf machine's command line, and the UKI's section layout."""

from pathlib import Path

import pytest

from appliance.assemble import uki
from appliance.boot import qemu
from appliance.boot.qemu import BootSpec
from appliance.bundle import Bundle
from appliance.errors import BootError
from tests.conftest import manifest_of


def bundle(tmp_path: Path, with_uki: bool) -> Bundle:
    files = {"kernel": {}, "initrd": {}, **({"uki.efi": {}} if with_uki else {})}
    return Bundle(tmp_path, manifest_of(machine="q35-ovmf", cmdline="console=ttyS0 reboot=t", files=files,
                                        virtio_transports=["virtio_pci"]))


def files(tmp_path: Path) -> qemu.BootFiles:
    return qemu.BootFiles(tmp_path / "c", tmp_path / "t", tmp_path / "p")


def test_ovmf_boots_the_bundles_uki_with_its_variables_never_written(tmp_path, monkeypatch):
    code, variables = tmp_path / "CODE.fd", tmp_path / "VARS.fd"
    code.write_bytes(b"c" * 40 + b"_FVH")  # a firmware volume's signature, where OVMF's images have it
    variables.write_bytes(b"v" * 40 + b"_FVH")
    monkeypatch.setattr(qemu, "OVMF", (code, variables))
    args = qemu.argv(BootSpec(bundle(tmp_path, True), "tcg"), files(tmp_path))
    assert args[args.index("-M") + 1] == "q35"
    assert args[args.index("-kernel") + 1] == str(tmp_path / "uki.efi") and "-initrd" not in args
    assert args[args.index("-append") + 1] == "console=ttyS0 reboot=t"  # reaches the stub as its command line
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={code}" in args
    assert f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}" in args
    # a bundle without a UKI (built for another machine): the kernel through its EFI stub
    plain = qemu.argv(BootSpec(bundle(tmp_path, False), "tcg"), files(tmp_path))
    assert plain[plain.index("-kernel") + 1] == str(tmp_path / "kernel") and "-initrd" in plain


def test_a_missing_ovmf_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(qemu, "OVMF", (tmp_path / "none.fd", tmp_path / "none2.fd"))
    with pytest.raises(BootError, match="the q35-ovmf machine needs Debian's OVMF .*: apt-get install ovmf"):
        qemu.argv(BootSpec(bundle(tmp_path, True), "tcg"), files(tmp_path))


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


def test_a_garbage_efi_program_or_firmware_is_one_line_before_any_boot(tmp_path, monkeypatch):
    """Issue 36: a garbage OVMF or uki.efi failed only at --timeout."""
    import pytest

    from appliance.boot import qemu
    from appliance.errors import BootError

    junk = tmp_path / "uki.efi"
    junk.write_bytes(b"\0" * 8192)
    with pytest.raises(BootError, match="is not an EFI program"):
        qemu.check_pe(junk)
    empty = tmp_path / "OVMF_CODE.fd"
    empty.write_bytes(b"")
    monkeypatch.setattr(qemu, "OVMF", (empty, empty))
    with pytest.raises(BootError, match="is not a UEFI firmware volume"):
        qemu.ovmf_args()

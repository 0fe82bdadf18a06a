"""Module files as shipped: every compression uncompressed, a module of another kernel refused."""

import gzip
import lzma

import pytest
import zstandard

from appliance.assemble import kmod, modfiles


def fake_module(release: str) -> bytes:
    return b"\x7fELF....modinfo\x00license=GPL\x00vermagic=" + release.encode() + b" SMP mod_unload\x00"


@pytest.mark.parametrize("suffix, pack", [(".ko", lambda d: d), (".ko.xz", lzma.compress), (".ko.gz", gzip.compress),
                                          (".ko.zst", lambda d: zstandard.ZstdCompressor().compress(d))])
def test_every_compression_is_shipped_uncompressed(tmp_path, suffix, pack):
    data = fake_module("6.1.0-test")
    (tmp_path / f"m{suffix}").write_bytes(pack(data))
    index = kmod.parse_index("6.1.0-test", f"m{suffix}:\n", "", "", "")
    [prepared] = modfiles.prepare(index, tmp_path, ["m"], strip=False)
    assert prepared.data == data and prepared.path == "m.ko"


def test_a_module_for_another_kernel_is_refused(tmp_path):
    (tmp_path / "m.ko").write_bytes(fake_module("5.10.0-other"))
    index = kmod.parse_index("6.1.0-test", "m.ko:\n", "", "", "")
    with pytest.raises(kmod.ModuleError, match="built for kernel 5.10.0-other, not 6.1.0-test"):
        modfiles.prepare(index, tmp_path, ["m"], strip=False)

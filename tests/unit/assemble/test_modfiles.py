"""Module files as shipped: every compression uncompressed, a module of another kernel refused."""

import gzip
import lzma

import pytest
import zstandard

from appliance.assemble import kmod, modfiles

DEP = """kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/block/virtio_blk.ko.zst: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/gpu/drm/virtio/virtio-gpu.ko: kernel/drivers/gpu/drm/drm.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/gpu/drm/drm.ko:
kernel/crypto/crc32c_generic.ko.gz:
kernel/sound/core/snd.ko:
"""


SOFTDEP = "softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\nsoftdep virtio_blk pre: nosuchthing\n"


ALIAS = "alias fs-ext4 ext4\nalias crypto-crc32c crc32c_generic\nalias virtio:d00000002v* virtio_blk\n"


BUILTIN = "kernel/drivers/virtio/virtio.ko\nkernel/lib/crc32c.ko\n"


@pytest.fixture
def index():
    return kmod.parse_index("6.1.0-test", DEP, SOFTDEP, ALIAS, BUILTIN)


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

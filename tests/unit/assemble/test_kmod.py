"""Module selection on a small hand-made index, and module file preparation."""


import pytest

from appliance.assemble import kmod

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


def test_names_drop_suffixes_and_dashes():
    assert kmod.module_name("kernel/drivers/gpu/drm/virtio/virtio-gpu.ko.xz") == "virtio_gpu"
    assert kmod.strip_suffix("a/b.ko.zst") == "a/b.ko"


def test_closure_orders_dependencies_and_softdeps_first(index):
    order = kmod.closure(index, kmod.select(index, ("fs-ext4",)))
    assert order == ["crc32c_generic", "crc16", "mbcache", "jbd2", "ext4"]
    for module in order:
        for dep in index.deps[module]:
            assert order.index(dep) < order.index(module)


def test_aliases_and_device_aliases_resolve(index):
    assert kmod.select(index, ("fs-ext4",)) == {"ext4"}
    assert kmod.resolve_alias(index, "virtio:d00000002v00001AF4") == ["virtio_blk"]


def test_builtin_is_satisfied_not_copied(index):
    assert kmod.resolve_alias(index, "virtio") == ["virtio"]
    assert kmod.closure(index, {"virtio"}) == []


def test_globs_match_names_or_paths_and_later_rules_win(index):
    assert kmod.select(index, ("virtio*",)) == {"virtio_blk", "virtio_ring"}  # virtio_gpu needs drm: blocked
    assert kmod.select(index, ("kernel/fs/*.ko",)) == {"mbcache"}
    assert kmod.select(index, ("kernel/fs/**.ko",)) == {"mbcache", "jbd2", "ext4"}
    assert kmod.select(index, ("kernel/fs/ext4/ext4.ko",)) == {"ext4"}  # .xz ignored in matching
    assert kmod.select(index, ("virtio*", "-virtio_ring")) == {"virtio_blk"}
    assert kmod.select(index, ("-virtio_ring", "virtio*")) == {"virtio_blk", "virtio_ring"}


def test_blocked_modules_stay_out_unless_named(index):
    assert "snd" not in kmod.select(index, ("*",))
    assert kmod.select(index, ("snd",)) == {"snd"}  # named exactly: the block yields
    with pytest.raises(kmod.ModuleError, match="virtio_gpu needs drm, which is blocked"):
        kmod.closure(index, kmod.select(index, ("virtio_gpu",)))
    assert kmod.closure(index, {"virtio_gpu"}, blocked=()) == ["drm", "virtio_ring", "virtio_gpu"]


def test_wrong_inputs_fail_clearly(index):
    with pytest.raises(kmod.ModuleError, match="'nosuch' matches no module of kernel 6.1.0-test"):
        kmod.select(index, ("nosuch",))
    broken = kmod.parse_index("6.1.0-test", DEP + "kernel/x.ko: kernel/missing.ko\n", "", "", "")
    with pytest.raises(kmod.ModuleError, match="module missing \\(needed by x\\) is not in the modules tree"):
        kmod.closure(broken, {"x"})

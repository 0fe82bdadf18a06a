"""Initrds rebuilt for tune --rebuild: recompressed, or without a module (its file and
its init.conf line), everything else as it was."""

import pytest

from appliance import bundle
from appliance.assemble import compress, cpio, initramfs, reinitrd
from appliance.assemble.compress import Compression
from appliance.assemble.modfiles import ModuleFile
from appliance.assemble.template import parse_template
from appliance.runs import tunables
from tests.conftest import ROOT, edit_manifest
from tests.unit.test_bundle import make_bundle

MODULES = [ModuleFile("crc16", "kernel/lib/crc16.ko", b"c" * 300, 300),
           ModuleFile("ext4", "kernel/fs/ext4/ext4.ko", b"e" * 900, 900)]


@pytest.fixture
def initrd():
    template = parse_template("t", "[modules]\nrules = ['fs-ext4']\n[init]\npayload = ['/bin/bench']\n"
                              "[programs]\nbuild = ['bench']\n", ROOT, {"bench"})
    blob = initramfs.build(template, b"init", {"bench": b"bench"}, 1000, modules=MODULES, release="6.1.0-t").data
    return blob


def members(blob):
    return {e.path: e for e in cpio.read(compress.decompress(blob))}


def test_modules_are_read_from_init_conf(initrd):
    assert reinitrd.modules(initrd) == ["crc16", "ext4"]


def test_without_a_module_drops_its_file_and_line_only(initrd):
    before, after = members(initrd), members(reinitrd.rebuild(initrd, without=["crc16"]))
    assert "lib/modules/6.1.0-t/kernel/lib/crc16.ko" not in after
    assert "lib/modules/6.1.0-t/kernel/fs/ext4/ext4.ko" in after
    conf = after[reinitrd.CONF].data.decode()
    assert "crc16" not in conf and "module /lib/modules/6.1.0-t/kernel/fs/ext4/ext4.ko ext4" in conf
    assert set(before) - set(after) == {"lib/modules/6.1.0-t/kernel/lib/crc16.ko"}
    assert all(after[p].data == before[p].data and after[p].mtime == before[p].mtime for p in after if p != reinitrd.CONF)
    with pytest.raises(ValueError, match="does not load virtio"):
        reinitrd.rebuild(initrd, without=["virtio"])


def test_recompressed_holds_the_same_archive(initrd):
    plain = reinitrd.rebuild(initrd, Compression.NONE)
    assert not plain.startswith(compress.ZSTD_MAGIC) and reinitrd.compression_of(plain) is Compression.NONE
    assert members(plain) == members(initrd)
    assert reinitrd.rebuild(plain, Compression.ZSTD, 3).startswith(compress.ZSTD_MAGIC)


def test_tune_rebuild_knobs_make_real_variants(tmp_path, initrd):
    make_bundle(tmp_path)
    (tmp_path / "initrd").write_bytes(initrd)
    edit_manifest(tmp_path, lambda m: m["files"].update(initrd=bundle.file_entry(tmp_path / "initrd")))
    target = bundle.load(tmp_path)
    knobs = {k.name: k for k in tunables.rebuild_catalog(target)}
    assert set(knobs) == {"initrd uncompressed", "initrd zstd -3", "without crc16", "without ext4"}
    variant, words = tunables.apply(target, knobs["without ext4"], tmp_path / "work")
    assert words == "" and variant.initrd != target.initrd and reinitrd.modules(variant.initrd.read_bytes()) == ["crc16"]
    both = tunables.combine([knobs["without ext4"], knobs["initrd uncompressed"], knobs["initrd zstd -3"]])
    assert both.initrd == ("without=ext4", "compression=none")  # one compression: the first
    combined, _ = tunables.apply(target, both, tmp_path / "work")
    assert reinitrd.compression_of(combined.initrd.read_bytes()) is Compression.NONE
    assert reinitrd.modules(combined.initrd.read_bytes()) == ["crc16"]


def test_a_boot_only_initrd_keeps_the_init_and_its_modules_and_drops_the_payload(initrd):
    keep = {"init", "etc/appliance/init.conf", "lib/modules/6.1.0-t/kernel/lib/crc16.ko",
            "lib/modules/6.1.0-t/kernel/fs/ext4/ext4.ko"}
    bare = members(reinitrd.boot_only(initrd, keep))
    assert "bin/bench" not in bare and keep <= set(bare) and "dev/console" in bare
    conf = bare["etc/appliance/init.conf"].data.decode()
    assert "payload" not in conf and "module /lib/modules/6.1.0-t/kernel/fs/ext4/ext4.ko ext4" in conf
    assert "after poweroff" in conf
    alone = members(reinitrd.init_only(initrd, {"init", "etc/appliance/init.conf"}))
    assert not any(path.endswith(".ko") for path in alone) and "init" in alone
    assert alone["etc/appliance/init.conf"].data.decode() == "after poweroff\n"

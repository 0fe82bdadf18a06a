"""`appliance inspect`'s inventory: the initrd read back file by file, modules apart,
its compression named, and sizes summed per source."""

from appliance import bundle
from appliance.assemble import compress, cpio, inventory
from appliance.machines import Machine

CONTENTS = [
    {"path": "/init", "in": "initrd", "kind": "file", "bytes": 6000, "source": "init (dietlibc)"},
    {"path": "/lib/modules/6.1/virtio_blk.ko", "in": "initrd", "kind": "file", "bytes": 900,
     "source": "kernel module virtio_blk"},
    {"path": "/lib/modules/6.1/ext4.ko", "in": "initrd", "kind": "file", "bytes": 40000, "source": "kernel module ext4"},
    {"path": "/bin/sh", "in": "initrd", "kind": "symlink", "bytes": 0, "source": "busybox-static 1.35"},
]


def inspected(tmp_path, contents):
    archive = cpio.write([cpio.file("init", b"i" * 6000), cpio.file("lib/modules/6.1/ext4.ko", b"m" * 40000),
                          cpio.file("lib/modules/6.1/virtio_blk.ko", b"v" * 900), cpio.symlink("bin/sh", "busybox")])
    (tmp_path / "kernel").write_bytes(b"K" * 100)
    (tmp_path / "initrd").write_bytes(compress.compress(archive, compress.Compression.ZSTD))
    build = {"kernel": {"release": "6.1.0-test"}, "initrd": {"programs": {"init": 1}, "modules": {}},
             "contents": contents}
    bundle.write_manifest(tmp_path, bundle.Spec(name="t", cmdline="console=ttyS0", cmdline_base="",
                                                machine=Machine.MICROVM, memory_mib=64, cpus=1, user_probes=(),
                                                build=build))
    return inventory.report(bundle.load(tmp_path)), len(archive)


def test_the_initrd_is_read_back_with_its_modules_and_compression(tmp_path):
    info, raw = inspected(tmp_path, CONTENTS)
    initrd = info["initrd"]
    assert initrd["compression"] == "zstd" and initrd["uncompressed_bytes"] == raw
    assert [f["path"] for f in initrd["files"] if f["module"]] == ["lib/modules/6.1/ext4.ko",
                                                                   "lib/modules/6.1/virtio_blk.ko"]
    assert initrd["modules_bytes"] == 40900 and info["kernel_release"] == "6.1.0-test"


def test_sizes_are_summed_per_source_with_the_kernels_modules_as_one(tmp_path):
    info, _ = inspected(tmp_path, CONTENTS)
    assert info["sources"] == [{"source": "kernel modules", "files": 2, "bytes": 40900},
                               {"source": "init (dietlibc)", "files": 1, "bytes": 6000},
                               {"source": "busybox-static 1.35", "files": 1, "bytes": 0}]
    text = inventory.text(info)
    assert "/bin/sh (link)" in text and "initrd: 4 files (2 modules, 40900 bytes)" in text


def test_a_bundle_without_contents_is_listed_from_its_initrd(tmp_path):
    info, _ = inspected(tmp_path, [])
    assert "sources" not in info
    assert "      6000  init" in inventory.text(info)

"""inspect --cost's sessions before they boot: the debug one with its words and
consoles, the bare one on the boot-only initrd, the bound on the init alone, one per
fragment on the kernel built without it; and the boots that count, by session."""

from appliance import bundle
from appliance.assemble import cpio, reinitrd
from appliance.boot.accel import AccelChoice
from appliance.machines import Accel, Machine
from appliance.runs import costboots
from tests.unit.runs.test_compare import fake_run

TCG = AccelChoice(Accel.TCG, "test")


def cpio_bundle(folder, payload=b"b" * 128):
    """A bundle whose initrd is a real archive: the init, its config, a module, the payload."""
    conf = "mount proc\nmodule virtio_blk\npayload /bin/bench\nafter poweroff\n"
    archive = cpio.write([cpio.file("init", b"i" * 64), cpio.file(reinitrd.CONF, conf.encode()),
                          cpio.file("lib/modules/virtio_blk.ko", b"m" * 32), cpio.file("bin/bench", payload)])
    folder.mkdir()
    (folder / "kernel").write_bytes(b"K" * 100)
    (folder / "initrd").write_bytes(archive)
    build = {"kernel": {"release": "6.1.0-test"}, "initrd": {"programs": {"init": 1}, "modules": {}}, "contents": []}
    bundle.write_manifest(folder, bundle.Spec(name="t", cmdline="console=ttyS0", cmdline_base="",
                                              machine=Machine.MICROVM, memory_mib=64, cpus=1, user_probes=(),
                                              build=build))
    return bundle.load(folder)


def paths(initrd):
    return sorted(e.path for e in cpio.read_initrd(initrd.read_bytes()) if e.kind == "file")


def test_each_session_boots_what_its_question_needs(tmp_path):
    target = cpio_bundle(tmp_path / "b")
    smaller = tmp_path / "kernel-without-net"
    smaller.write_bytes(b"k")
    boots = costboots.prepare(target, TCG, 3, tmp_path, debug_words="initcall_debug", keep={"init",
                              "lib/modules/virtio_blk.ko"}, init={"init"}, without={"net": smaller})
    assert boots.debug.plan.extra_cmdline == "initcall_debug" and boots.debug.plan.keep_consoles
    assert boots.plain.bundle.initrd == target.initrd and not boots.plain.plan.extra_cmdline
    assert paths(boots.bare.bundle.initrd) == ["etc/appliance/init.conf", "init", "lib/modules/virtio_blk.ko"]
    bare_conf = next(e for e in cpio.read_initrd(boots.bare.bundle.initrd.read_bytes()) if e.path == reinitrd.CONF)
    assert b"payload" not in bare_conf.data and b"module virtio_blk" in bare_conf.data
    assert paths(boots.bound.bundle.initrd) == ["etc/appliance/init.conf", "init"]
    assert boots.fragments["net"].bundle.kernel == smaller
    assert boots.fragments["net"].bundle.initrd == boots.bound.bundle.initrd
    assert len(boots.sessions) == 5 and {s.plan.n for s in boots.sessions} == {3}


def test_only_counted_boots_count_and_the_debug_ones_keep_their_consoles(tmp_path):
    boots = costboots.prepare(cpio_bundle(tmp_path / "b"), TCG, 2, tmp_path, debug_words="initcall_debug",
                              keep={"init"}, init={"init"})
    for session in boots.sessions:
        session.runs = [fake_run(0, 5000, 20, warmup=True), fake_run(1, 4000, 20), fake_run(2, 4100, 20)]
        session.consoles = ["warm", "one", "two"]
    debug, plain, bare, bound = boots.counted()
    assert [console for _, console in debug] == ["one", "two"]
    assert [r["index"] for r in plain] == [r["index"] for r in bare] == [r["index"] for r in bound] == [1, 2]
    assert boots.counted_fragments() == {}

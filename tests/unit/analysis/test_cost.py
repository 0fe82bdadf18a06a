"""inspect --cost's arithmetic: bytes per source from the build's contents, the measured
unpack shared out by bytes among the files that could move to a root disk, module loads
from the init's lines, the mount and the init's own work, and totals that add up."""

import pytest

from appliance.analysis import cost, initcalls

CONTENTS = [
    {"path": "/init", "in": "initrd", "source": "init", "kind": "file", "bytes": 25_000},
    {"path": "/lib/modules/6.1/virtio_blk.ko", "in": "initrd", "source": "kernel module virtio_blk", "kind": "file",
     "bytes": 40_000},
    {"path": "/usr/lib/libc.so.6", "in": "initrd", "source": "debian libc6=2.36", "kind": "file", "bytes": 3_000_000},
    {"path": "/usr/bin/python3", "in": "initrd", "source": "debian python3=3.11", "kind": "file", "bytes": 1_000_000},
    {"path": "/usr/bin/python", "in": "initrd", "source": "debian python3=3.11", "kind": "symlink", "bytes": 0},
    {"path": "/opt/big.db", "in": "rootfs", "source": "template big.db", "kind": "file", "bytes": 9_000_000},
]


def run(to_init: float, events: dict[str, float], modules: dict[str, float], round_: int = 0) -> dict:
    """A run record whose guest clock reads 3000 ms less than the host's (QEMU's start
    and the kernel's decompression)."""
    return {"phases_ms": {"to_init": to_init}, "round": round_,
            "events": [{"name": k, "t_ms": v} for k, v in events.items()],
            "guest_probes": [{"name": k, "boottime_ns": int((v - 3000) * 1e6)} for k, v in events.items()],
            "guest_modules": [{"name": k, "start_ns": 0, "duration_ns": int(v * 1e6)} for k, v in modules.items()]}


def plain(to_init: float, round_: int = 0) -> dict:
    return run(to_init, {"init_start": to_init, "init_modules_loaded": to_init + 20, "init_root_mounted": to_init + 50,
                         "payload_start": to_init + 60}, {"virtio_blk": 15.0}, round_)


def debug_calls() -> list[initcalls.Initcall]:
    return [initcalls.Initcall("populate_rootfs", None, 1000.0, 900_000.0, 0, 1, 1),
            initcalls.Initcall("virtio_blk_init", "virtio_blk", 2000.0, 4000.0, 0, 80, 2)]


def bound(to_init: float, round_: int = 0) -> dict:
    return run(to_init, {"init_start": to_init}, {}, round_)


def test_the_unpack_is_shared_by_bytes_and_the_rows_add_up_to_what_was_measured():
    # the host's mood moves between rounds; differences within a round see through it (the
    # difference of the medians would say 1500 - 1450 = 50 ms)
    table = cost.cost(CONTENTS, [debug_calls()] * 3, [plain(1400, 0), plain(1500, 1), plain(1900, 2)],
                      [bound(t, i) for i, t in enumerate((1000, 1450, 1500))],
                      [bound(t, i) for i, t in enumerate((960, 1410, 1460))])
    rows = {r.source: r for r in table.sources}
    assert table.unpack_ms == pytest.approx(400.0)  # plain - boot-only per round: 400, 50, 400
    assert rows["debian libc6=2.36"].unpack_ms == pytest.approx(300.0)  # 3 MB of the 4 MB that could move
    assert rows["debian python3=3.11"].unpack_ms == pytest.approx(100.0) and rows["debian python3=3.11"].files == 1
    # the module's unpack: boot-only against the init alone (1000 - 960); the init's own is in both
    assert table.needed_unpack_ms == pytest.approx(40.0)
    assert rows["kernel module virtio_blk"].unpack_ms == pytest.approx(40.0) and rows["init"].unpack_ms == 0
    assert rows["kernel module virtio_blk"].load_ms == pytest.approx(15.0)
    assert rows["kernel module virtio_blk"].initcall_ms == pytest.approx(4.0)
    assert rows["template big.db"].root_bytes == 9_000_000 and rows["template big.db"].unpack_ms == 0
    assert table.mount_ms == pytest.approx(30.0)  # init_modules_loaded -> init_root_mounted
    assert table.init_ms == pytest.approx(60 - 15 - 30)  # init_start -> payload_start, loads and mount taken out
    assert table.total_ms == pytest.approx(400 + 40 + 15 + 30 + 15)
    assert table.measured_ms == pytest.approx(1460 - 960)  # plain's payload_start over the init alone, per round
    assert table.erofs_saving_ms() == pytest.approx(400.0)
    assert [r.source for r in table.sources][:2] == ["debian libc6=2.36", "debian python3=3.11"]
    assert "900.0 ms" in table.notes[0]  # the unpack's own CPU time, from populate_rootfs
    shown = cost.text(table.to_dict())
    assert "debian libc6=2.36" in shown and "saving their 400.0 ms of unpack" in shown
    assert "the table accounts for 100%" in shown


def test_noise_larger_than_the_unpack_is_said_and_an_appliance_without_movable_files_pays_none():
    noisy = cost.cost(CONTENTS, [], [plain(1000)], [bound(1050)], [bound(1000)])
    assert noisy.unpack_ms == 0 and any("boot more" in n for n in noisy.notes)
    erofs = [c for c in CONTENTS if not c["source"].startswith("debian ")]
    none = cost.cost(erofs, [], [plain(1100)], [bound(1000)], [bound(990)])
    assert none.unpack_ms == 0 and none.erofs_saving_ms() == 0 and none.needed_unpack_ms == pytest.approx(10.0)
    with pytest.raises(ValueError, match="no init_start"):
        cost.cost(CONTENTS, [], [], [], [])


def test_the_boot_only_and_init_only_initrds_keep_what_they_should():
    assert cost.boot_paths(CONTENTS) == {"init", "lib/modules/6.1/virtio_blk.ko"}
    assert cost.init_paths(CONTENTS) == {"init"}


def test_a_fragment_costs_the_kernel_phase_it_adds_within_each_round():
    def alone(kernel: float, round_: int) -> dict:
        return {"round": round_, "phases_ms": {"kernel": kernel}}

    with_it = [alone(k, i) for i, k in enumerate((200.0, 260.0, 205.0))]  # round 1: a slow moment for both
    without = {"userland": [alone(k, i) for i, k in enumerate((190.0, 250.0, 196.0))], "ftrace": []}
    costs = cost.fragment_costs(with_it, without)
    assert costs["userland"] == pytest.approx(10.0) and costs["ftrace"] is None
    table = cost.cost(CONTENTS, [], [plain(1400)], [bound(1000)], [bound(960)])
    table.fragments = costs
    shown = cost.text(table.to_dict())
    assert "kernel fragment userland: 10.0 ms of the kernel phase" in shown and "kernel fragment ftrace: -" in shown

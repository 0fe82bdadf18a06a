import pytest

from appliance.phases import EXEC, derive
from appliance.probes import PROBE_MMIO, Event, parse_console_probes, parse_trace, probe_table

TABLE = probe_table(((0x20, "work_done"),))


def line(usec: int, cpu: int, addr: int, value: int, name: str) -> str:
    return (f"2746@1795236580.{usec:06d}:memory_region_ops_write cpu {cpu} mr 0x55570fe65800 "
            f"addr {addr:#x} value {value:#x} size 1 name '{name}'")


TRACE = "\n".join([
    line(100, -1, 0xFEE00000, 0, "apic-msi"),  # QEMU itself at reset: not the guest
    line(159, 0, 0xCF8, 0x80000000, "io"),  # first guest I/O: firmware running
    line(300, 0, 0x510, 0x19, "fwcfg"),
    line(7432, 0, 0x518, 0x7B48, "fwcfg.dma"),  # last fw_cfg write: kernel loaded
    "garbage line from somewhere else",
    line(9000, 0, 0x70, 0x80, "rtc-index"),
    line(400000, 0, 0xF4, 0x10, "isa-debugcon"),
    line(401000, 0, 0xF4, 0x13, "isa-debugcon"),
    line(420000, 0, 0xF4, 0x20, "isa-debugcon"),
    line(430000, 0, 0xF4, 0x14, "isa-debugcon"),
])


def test_trace_gives_probes_and_inferred_boundaries():
    events = parse_trace(TRACE, TABLE)
    assert [(e.name, e.source) for e in events] == [
        ("fw_entry", "trace-inferred"), ("kernel_entry", "trace-inferred"), ("init_start", "trace"),
        ("payload_start", "trace"), ("work_done", "trace"), ("payload_end", "trace")]
    assert events[0].host_time_ns == 1795236580_000159_000
    assert events[1].host_time_ns == 1795236580_007432_000


def test_real_firmware_probes_replace_inference():
    trace = TRACE + "\n" + "\n".join([line(150, 0, 0xF5, 1, "isa-debugcon"), line(8000, 0, 0xF4, 3, "isa-debugcon")])
    names = [e.name for e in parse_trace(trace, TABLE)]
    assert "fw_entry" not in names and "kernel_entry" not in names
    assert names[:2] == ["fw_start", "linux_start_boot"]


def read(usec: int, sector: int) -> str:
    return (f"2745@1795236580.{usec:06d}:virtio_blk_handle_read vdev 0x557439e41bf0 req 0x557439034ac0 "
            f"sector {sector} nsectors 8")


def test_a_boot_loaders_disk_reads_give_its_entry_and_the_kernels():
    # OVMF's own fw_cfg writes go on after its first disk read: with the reads traced,
    # the kernel's entry is the last read before the guest's first probe, not a fw_cfg write
    trace = "\n".join([TRACE, line(4000, 0, 0x6012, 0, "virtio-pci"),  # OVMF's driver starts: a reset
                       read(5000, 0), read(6000, 34), line(8000, 0, 0x518, 0x7B48, "fwcfg.dma"),
                       line(9500, 0, 0x6012, 7, "virtio-pci"),  # not a reset: DRIVER_OK
                       read(300000, 2492),
                       line(350000, 0, 0x14, 0, "virtio-pci-common-virtio-blk"),  # boot services end
                       line(351000, 0, 0x6012, 0, "virtio-pci"),  # the other disk, a moment later
                       read(405000, 9)])  # the last: our init's root disk, after init_start
    events = {e.name: e for e in parse_trace(trace, TABLE)}
    assert events["loader_entry"].host_time_ns == 1795236580_005000_000
    assert events["kernel_entry"].host_time_ns == 1795236580_300000_000
    assert events["kernel_entry"].source == events["loader_entry"].source == "trace-inferred"
    assert events["efi_exit"].host_time_ns == 1795236580_350000_000 and events["efi_exit"].source == "trace-inferred"
    phases = derive(sorted([Event(EXEC, 1795236580_000000_000, "host"), *events.values()],
                           key=lambda e: e.host_time_ns))
    assert phases["firmware"] == pytest.approx(5.0 - 0.159)
    assert phases["bootloader"] == pytest.approx(295.0)
    assert phases["kernel"] == pytest.approx(100.0)
    assert phases["k_efi"] == pytest.approx(50.0)  # part of the kernel phase, as k_decomp is


def test_without_disk_reads_there_is_no_boot_loader_phase():
    events = parse_trace(TRACE, TABLE)
    assert "loader_entry" not in {e.name for e in events}
    assert derive(events)["bootloader"] is None


def test_unknown_code_is_kept_under_its_own_name():
    names = [e.name for e in parse_trace(line(5, 0, 0xF4, 0x55, "isa-debugcon"), TABLE)]
    assert "unknown_0xf4_0x55" in names


def test_console_probe_lines():
    text = "[ 1.2] x\nappliance-probe: init_start 1233837692\r\nnoise appliance-probe: work_done 1264630506\n"
    assert parse_console_probes(text) == [("init_start", 1233837692), ("work_done", 1264630506)]


def mmio(usec: int, addr: int, value: int, name: str = "virtio-mmio") -> str:
    return (f"2746@1795236580.{usec:06d}:memory_region_ops_write cpu 0 mr 0x55570fe65800 "
            f"addr {addr:#x} value {value:#x} size 4 name '{name}'")


def test_aarch64_probes_are_writes_to_the_probe_register_and_the_first_write_is_the_kernel():
    trace = "\n".join([
        mmio(100, 0x9000000, 0x41, "pl011"),  # the kernel's first device write
        mmio(200, 0xA003E70, 0x0F),  # a real virtio-mmio device's status register: no probe
        mmio(300, PROBE_MMIO, 0x10),
        mmio(400, PROBE_MMIO, 0x13),
        mmio(500, PROBE_MMIO, 0x20),
    ])
    events = parse_trace(trace, TABLE | {(0xF4, 0x20): "work_done"}, firmware=False)
    assert [(e.name, e.source) for e in events] == [
        ("kernel_entry", "trace-inferred"), ("init_start", "trace"), ("payload_start", "trace"), ("work_done", "trace")]
    phases = derive(events)
    assert phases["firmware"] is None
    assert phases["kernel"] == pytest.approx(0.2, abs=1e-3) and phases["init"] == pytest.approx(0.1, abs=1e-3)



"""The instruction clock's host side: QEMU's arguments, the plugin's report, and each
probe event's count, matched in order per port with QEMU's trace."""

from pathlib import Path

import pytest

from appliance.boot import insnclock
from appliance.clocks import Clock
from appliance.errors import BootError
from appliance.phases import EXEC, EXIT, in_instructions
from appliance.probes import Event

REPORT = """vcpus 1
probe 0xf5 0 1000 1000
probe 0xf4 0 5000 5000
probe 0xf4 0 9000 9000
probe 0xf4 0 9500 9500
total 0 9900
sample 0xffffffff81000000 3
end 9900
"""


def events(*names_sources):
    return [Event(name, i * 1_000_000, source) for i, (name, source) in enumerate(names_sources)]


def test_qemu_args_per_clock():
    assert insnclock.qemu_args(Clock.WALL, None, Path("/r")) == []
    args = insnclock.qemu_args(Clock.INSTRUCTIONS, Path("/p/lib,x.so"), Path("/w/r,1.txt"))
    assert args == ["-plugin", "/p/lib,,x.so,out=/w/r,,1.txt"]  # a comma in a value is doubled
    virtual = insnclock.qemu_args(Clock.VIRTUAL, Path("/p/lib.so"), Path("/r"))
    assert virtual[2:] == ["-icount", "shift=0,sleep=off,align=off", "-rtc", "base=2020-01-01T00:00:00,clock=vm"]
    with pytest.raises(BootError, match="needs the instruction clock's plugin"):
        insnclock.qemu_args(Clock.VIRTUAL, None, Path("/r"))


def test_the_report_is_parsed_and_a_cut_line_ignored():
    report = insnclock.parse(REPORT + "probe 0xf4 0 12")
    assert report.vcpus == 1 and len(report.probes) == 4 and report.end == 9900
    assert report.totals == {0: 9900} and report.samples == {0xFFFFFFFF81000000: 3}


def test_counts_pair_the_trace_with_the_report_port_by_port():
    traced = events((EXEC, "host"), ("fw_start", "trace"), ("fw_entry", "trace-inferred"), ("init_start", "trace"),
                    ("payload_start", "trace"), ("payload_end", "trace"), (EXIT, "host"))
    found, warning = insnclock.counts(traced, insnclock.parse(REPORT))
    assert warning is None
    assert found == {EXEC: 0, "fw_start": 1000, "init_start": 5000, "payload_start": 9000, "payload_end": 9500,
                     EXIT: 9900}
    assert "fw_entry" not in found  # inferred from the trace: no instruction of its own


def test_writes_the_plugin_cannot_see_are_the_firmwares_first_ones():
    """qboot writes its probes through %dx (not `out %al,$0xf4`), before the kernel runs."""
    traced = events((EXEC, "host"), ("fw_start", "trace"), ("fw_do_boot", "trace"), ("linux_start_boot", "trace"),
                    ("init_start", "trace"), ("payload_start", "trace"), ("payload_end", "trace"), (EXIT, "host"))
    found, warning = insnclock.counts(traced, insnclock.parse(REPORT))
    assert "the first 1 of 2 probe writes to port 0xf5" in warning and "the first 1 of 4 probe writes to port 0xf4" in warning
    assert found["fw_do_boot"] == 1000 and "fw_start" not in found and "linux_start_boot" not in found
    assert found["init_start"] == 5000 and found["payload_end"] == 9500 and found[EXIT] == 9900


def test_more_writes_than_the_trace_has_give_that_port_no_counts():
    traced = events((EXEC, "host"), ("init_start", "trace"), (EXIT, "host"))
    found, warning = insnclock.counts(traced, insnclock.parse(REPORT))
    assert "saw 3 probe writes to port 0xf4 and QEMU's trace 1" in warning and "init_start" not in found


def test_phases_in_instructions_span_the_same_events_as_the_wall_ones():
    times = {EXEC: 0.0, "kernel_entry": 30.0, "init_start": 4000.0, "payload_start": 4010.0, "payload_end": 4040.0,
             EXIT: 4100.0}
    counts = {EXEC: 0, "init_start": 5000, "payload_start": 9000, "payload_end": 9500, EXIT: 9900}
    phases = in_instructions(times, counts)
    assert phases["init"] == 4000 and phases["payload"] == 500 and phases["to_init"] == 5000
    assert phases["total"] == 9900
    # the wall kernel phase starts at kernel_entry (inferred): in instructions it is unknown,
    # never silently re-anchored at another event
    assert phases["kernel"] is None


def test_under_kvm_the_guests_instructions_come_from_perf_stat():
    """The KVM path (not runnable on this project's machines: no usable KVM): perf stat's
    instructions:G around QEMU, the whole run's count; its CSV parsed, its refusals one line."""
    assert insnclock.perf_stat_args(Path("/w/insns.txt")) == ["perf", "stat", "-e", "instructions:G", "-x", ",",
                                                               "-o", "/w/insns.txt", "--"]
    written = "# started on Mon Dec  7\n\n8123456789,,instructions:G,4012345678,100.00,,\n"
    assert insnclock.parse_perf_stat(written) == 8123456789
    assert insnclock.parse_perf_stat("<not supported>,,instructions:G,0,100.00,,\n") is None
    assert insnclock.parse_perf_stat("") is None


def test_virtual_time_under_kvm_is_refused(tmp_path):
    from appliance import bundle
    from appliance.boot.qemu import BootSpec, check_kvm_clock
    from tests.conftest import manifest_of

    (tmp_path / "kernel").write_bytes(b"k")
    (tmp_path / "initrd").write_bytes(b"i")
    data = manifest_of(files={n: bundle.file_entry(tmp_path / n) for n in ("kernel", "initrd")})
    bundle.write(tmp_path, data)
    target = bundle.load(tmp_path)
    with pytest.raises(BootError, match="only TCG has"):
        check_kvm_clock(BootSpec(target, "kvm", clock=Clock.VIRTUAL))


def test_a_qemu_that_cannot_load_plugins_is_one_line():
    from appliance.boot import measure
    from appliance.boot.qemu import Exit

    done = Exit(1, 0, 0, 0, "qemu-system-x86_64: -plugin /p/libinsncount.so,out=/w/i: invalid option\n")
    raw = measure.RawBoot(done, "", "", [], ["qemu-system-x86_64", "-plugin", "/p/libinsncount.so,out=/w/i"],
                          Path("/w/perf.data"))
    error = measure._failed_start(raw)
    assert "could not load the instruction clock's plugin" in str(error) and "\n" not in str(error)

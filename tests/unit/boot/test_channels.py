"""Event parsing for the serial, exit and perf channels."""

from appliance.boot import perf
from appliance.boot.serial import probe_events, uart_cost_us_per_char
from appliance.phases import EXEC, derive
from appliance.probes import Event, probe_table

MS = 1_000_000


def test_serial_events_use_arrival_times_and_skip_other_lines():
    lines = [(5 * MS, "[    1.0] booting"), (9 * MS, "appliance-probe: init_start 1233837692"),
             (12 * MS, "appliance-probe: payload_start 1239524403")]
    assert probe_events(lines) == [Event("init_start", 9 * MS, "serial"), Event("payload_start", 12 * MS, "serial")]


def test_uart_cost_from_back_to_back_kernel_lines():
    lines = []
    host = 0
    for i in range(40):
        text = f"[    0.{100000 + i:06d}] " + "x" * 50  # logged 1 us apart, 65 characters each
        host += 65 * 4_000  # arriving 4 us per character later
        lines.append((host, text))
    assert abs(uart_cost_us_per_char(lines) - 65 * 4 / 66) < 0.01
    assert uart_cost_us_per_char(lines[:5]) is None  # too few pairs (a quiet boot)


def test_perf_script_lines_become_probe_events():
    text = """ 1795236580.123456789:  kvm:kvm_pio: pio_write at 0xf4 size 1 count 1 val 0x10
 1795236580.223456789:  kvm:kvm_pio: pio_write at 0x3f8 size 1 count 1 val 0x41
 1795236580.323456789:  kvm:kvm_pio: pio_write at 0xf5 size 1 count 1 val 0x1
garbage"""
    events = perf.parse(text, probe_table())
    assert events == [Event("init_start", 1795236580_123456789, "perf"), Event("fw_start", 1795236580_323456789, "perf")]


def test_perf_unavailable_under_tcg_says_why():
    ok, why = perf.available("tcg")
    assert not ok and "TCG" in why


def test_exit_channel_keeps_only_exec_anchored_phases():
    events = [Event(EXEC, 0, "host"), Event("init_start", 4500 * MS, "exit"), Event("payload_start", 4400 * MS, "exit")]
    phases = derive(events, anchored_only=True)
    assert phases["to_init"] == 4500.0 and phases["init"] is None and phases["kernel"] is None

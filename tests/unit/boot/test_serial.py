"""The serial channel: probe lines timed by arrival, and the UART's cost per character."""

from appliance.boot.serial import probe_events, uart_cost_us_per_char
from appliance.probes import Event

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

"""systemd's view of a boot, read from a real console (Debian bookworm booted by its own
init under TCG, tests/data/systemd-debian-bookworm.console: status lines in colour, a
getty's prompt inside blame's output), and set beside the host's phases."""

import pytest

from appliance import systemdview
from appliance.probes import parse_console_probes
from tests.conftest import ROOT

CONSOLE = (ROOT / "tests" / "data" / "systemd-debian-bookworm.console").read_text()


@pytest.mark.parametrize("text, ms", [("345ms", 345.0), ("1.424s", 1424.0), ("1min 31.736s", 91736.0),
                                      ("12us", 0.012), ("1h 2min 3s", 3723000.0), ("no time", None)])
def test_systemd_time_spans_in_ms(text, ms):
    assert systemdview.span_ms(text) == pytest.approx(ms) if ms is not None else systemdview.span_ms(text) is None


def test_a_real_report_is_read_whole():
    view = systemdview.read(CONSOLE)
    assert view is not None
    assert view["state"] == "running" and view["failed"] == []
    assert view["startup_ms"] == {"kernel": 1325.0, "userspace": 8223.0} and view["total_ms"] == 9548.0
    assert (view["target"], view["target_ms"]) == ("graphical.target", 7901.0)
    # the first blame line shares the console with the getty's "vm login: " prompt
    assert view["blame"][0] == {"unit": "e2scrub_reap.service", "ms": 3164.0}
    assert {"unit": "ssh.service", "ms": 1441.0} in view["blame"] and len(view["blame"]) == 31
    assert view["critical_chain"][2] == "graphical.target @7.901s"
    assert any("ssh.service @4.952s +1.441s" in line for line in view["critical_chain"])


def test_firmware_loader_and_initrd_parts_and_failed_units_are_read():
    report = ("appliance-systemd: begin degraded\nappliance-systemd: time\n"
              "Startup finished in 2.1s (firmware) + 500ms (loader) + 1.2s (kernel) + 3.4s (initrd) + "
              "1min 2.5s (userspace) = 1min 9.7s\nmulti-user.target reached after 1min 1s in userspace.\n"
              "appliance-systemd: failed\nssh.service loaded failed failed OpenBSD Secure Shell server\n"
              "appliance-systemd: end\n")
    view = systemdview.read(report)
    assert view["startup_ms"] == {"firmware": 2100.0, "loader": 500.0, "kernel": 1200.0, "initrd": 3400.0,
                                  "userspace": 62500.0}
    assert view["total_ms"] == 69700.0 and view["target"] == "multi-user.target" and view["target_ms"] == 61000.0
    assert view["state"] == "degraded" and view["failed"] == ["ssh.service"]


def test_a_report_cut_short_is_no_view():
    assert systemdview.read(CONSOLE.split("appliance-systemd: end")[0]) is None
    assert systemdview.read("no report at all") is None


def test_the_host_is_set_beside_systemd_for_the_same_stretches():
    view = systemdview.read(CONSOLE)
    # the guest's probe times of the same boot (its console lines)
    guest = {name: ns / 1e6 for name, ns in parse_console_probes(CONSOLE)}
    rows = systemdview.against_host(view, {"kernel": 3600.0, "initrd": 130.0, "userspace": 8500.0}, guest)
    assert [(r["what"], r["systemd_ms"], r["host_ms"]) for r in rows] == [("kernel", 1325.0, 3730.0),
                                                                         ("userspace", 8223.0, 8500.0)]
    kernel, userspace = rows[0]["because"], rows[1]["because"]
    # systemd took its timestamp 185.8 ms after our exec (1139.2 ms on the guest's clock)
    assert kernel[systemdview.SYSTEMD_START] == pytest.approx(-185.78, abs=0.01)
    assert userspace[systemdview.SYSTEMD_START] == pytest.approx(185.78, abs=0.01)
    assert kernel[systemdview.BEFORE_CLOCK] == pytest.approx(3600.0 - 1011.85, abs=0.01)
    assert userspace[systemdview.REPORT_LAG] == pytest.approx(9657.21 - 9548.0, abs=0.01)
    assert systemdview.against_host(view, {"kernel": None, "initrd": 130.0}, guest) == []
    summary = systemdview.summary([(view, {"userspace": 8500.0}, guest), (view, {"userspace": 8700.0}, guest)])
    assert summary["n"] == 2 and summary["against_host"][0]["host_ms"] == 8600.0
    assert summary["slowest"][0] == {"unit": "e2scrub_reap.service", "ms": 3164.0}


def test_where_systemds_start_is_probed_the_host_stretches_end_and_begin_there():
    view = systemdview.read(CONSOLE)
    guest = {name: ns / 1e6 for name, ns in parse_console_probes(CONSOLE)}
    phases = {"kernel": 3600.0, "initrd": 130.0, "to_systemd": 190.0, "userspace": 8500.0}
    guest = {**guest, "systemd_start": 1325.0 + 240.0}  # the generator ran 240 ms after systemd's timestamp
    rows = systemdview.against_host(view, phases, guest)
    assert [(r["what"], r["systemd_ms"], r["host_ms"]) for r in rows] == [("kernel", 1325.0, 3920.0),
                                                                         ("userspace", 8223.0, 8310.0)]
    assert rows[0]["host_span"] == "kernel entry -> systemd_start" and systemdview.SYSTEMD_START not in rows[0]["because"]
    assert rows[0]["because"][systemdview.BEFORE_CLOCK] == pytest.approx(3600.0 - 1011.85, abs=0.01)
    assert rows[1]["because"][systemdview.REPORT_LAG] == pytest.approx(9657.21 - 9548.0, abs=0.01)
    assert rows[0]["because"][systemdview.GENERATORS] == pytest.approx(240.0)
    assert rows[1]["because"][systemdview.GENERATORS] == pytest.approx(-240.0)


def test_what_the_boot_waits_for_is_named_from_the_status_lines():
    # the real boot finished: every unit it started was said to have started (names cut differently)
    assert systemdview.waiting_for(CONSOLE) is None
    hung = CONSOLE + "         Starting hang.service …it that never finishes starting...\r\n"
    assert systemdview.waiting_for(hung) == "units it started that never finished: hang.service"
    running = "[\x1b[0;1;31m*\x1b[0m] A start job is running for a unit that never ends (12s / no limit)\r\n"
    assert systemdview.waiting_for(CONSOLE + running) == "a start job still running: a unit that never ends"
    assert systemdview.waiting_for("no status lines") is None

"""The terminal's phase table: a row per phase present with its span, the optional
sections only when the summary has them, and every figure in the row it belongs to."""

from appliance.phases import PHASE_NAMES
from appliance.results import summary
from appliance.runs import table
from tests.unit.runs.test_compare import fake_run


def test_every_phase_has_a_span_to_show():
    assert set(PHASE_NAMES) <= set(table.PHASE_HELP)


def test_a_row_per_phase_present_with_its_median_and_interval():
    s = summary([fake_run(i, 4500 + i, 25) for i in range(6)])
    text = table.phase_table(s)
    rows = {line.split()[0]: line for line in text.splitlines()[2:] if line and line.split()[0] in PHASE_NAMES}
    assert "firmware" in rows and "payload" in rows and "service_ready" not in rows
    assert rows["payload"].split()[1] == "25.0" and rows["payload"].endswith("payload_start -> payload_end")
    assert rows["kernel"].split()[1] == f"{s['phases']['kernel']['median']:.1f}"
    assert "runner overhead per boot (host time outside QEMU): median 12.0 ms" in text
    assert text.endswith("times in ms")


def test_sections_the_summary_lacks_are_left_out():
    s = summary([fake_run(i, 4500 + i, 25) for i in range(3)])
    assert table.instruction_lines(s) == [] and table.systemd_lines(s) == [] and table.payload_probe_lines(s) == []
    s["phases_insn"] = {"to_init": {"median": 5.0e9, "min": 4.9e9, "max": 5.1e9, "n": 3}}
    lines = table.instruction_lines(s)
    assert lines[0].startswith("phases in guest instructions") and "5000.000" in lines[1] and "4.0000%" in lines[1]

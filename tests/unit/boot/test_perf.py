"""perf's channel: perf script's kvm_pio lines as probe events, and why it is unavailable under TCG."""

from appliance.boot import perf
from appliance.probes import Event, probe_table


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

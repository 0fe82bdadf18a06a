"""Host load per boot: /proc/stat accounting, other work's share, the busy warning."""

from appliance import results
from appliance.boot import hostload

HZ = hostload._HZ


def stat(user, system, idle, steal):
    return f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 5\n"


def test_cpu_line_is_read_in_seconds():
    times = hostload.parse_stat(stat(HZ * 3, HZ * 1, HZ * 6, HZ * 2))
    assert times == hostload.CpuTimes(busy_s=4.0, steal_s=2.0, total_s=12.0)
    assert hostload.parse_stat("intr 5\n") is None


def test_qemu_own_cpu_is_not_counted_as_other_work():
    before = hostload.CpuTimes(busy_s=100.0, steal_s=0.0, total_s=1000.0)
    # 10 s of two CPUs' time passed; 5 s busy of which 4.6 s was the boot's QEMU
    quiet = hostload.during(before, hostload.CpuTimes(105.0, 0.0, 1010.0), own_cpu_s=4.6, loadavg=1.0)
    assert quiet["others_cpu_share"] == 0.04 and quiet["disturbed"] is False
    busy = hostload.during(before, hostload.CpuTimes(109.0, 0.0, 1010.0), own_cpu_s=4.6, loadavg=2.5)
    assert busy["others_cpu_share"] == 0.44 and busy["disturbed"] is True
    stolen = hostload.during(before, hostload.CpuTimes(104.0, 1.0, 1010.0), own_cpu_s=4.0, loadavg=1.0)
    assert stolen["steal_share"] == 0.1 and stolen["disturbed"] is True
    assert hostload.during(None, before, 1.0, None)["disturbed"] is False  # no /proc/stat: unknown, not busy
    assert hostload.during(before, before, 0.0, None, stopped_ms=3000.0)["disturbed"] is True  # SIGSTOPped


def test_warning_counts_only_disturbed_counted_boots():
    runs = [{"ok": True, "warmup": True, "host_load": {"disturbed": True}},
            {"ok": True, "warmup": False, "host_load": {"disturbed": True}},
            {"ok": True, "warmup": False, "host_load": {"disturbed": False}},
            {"ok": False, "warmup": False},
            {"ok": True, "warmup": False}]  # a results file from before host load was recorded
    assert results.disturbed(runs) == 1
    assert hostload.warning(runs).startswith("the host was busy during 1 of 3 counted boot(s)")
    assert hostload.warning(runs[2:]) is None

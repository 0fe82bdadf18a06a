"""Measurement you can trust, on real TCG boots: channels, cross-check, compare, faults."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, appliance

pytestmark = pytest.mark.boot


def test_trace_and_exit_agree_within_one_boot(minimal_kernel_bundle, tmp_path):
    out = tmp_path / "cc.json"
    # three runs: the figures are medians, and one exit boot in a few dozen has its QEMU
    # teardown take twice as long (seen once: 11 ms instead of ~5), which a single run reports
    done = appliance("crosscheck", str(minimal_kernel_bundle), "--channels", "trace,exit", "-n", "3", "--warmup", "0",
                     "--accel", "tcg", "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    check = json.loads(out.read_text())["crosscheck"]
    paired = check["paired_exit_trace"]
    # the minimal kernel's own probes are exit points too
    assert set(paired["probes"]) >= {"init_start", "payload_start", "work_done", "payload_end"}
    # the exit channel sees each probe after the trace does: QEMU's teardown, a few ms
    assert all(0 < bias < 50 for bias in paired["probes"].values()), paired
    # and that bias cancels out of phases: the channels agree on durations to within the
    # spread of that teardown, which on a busy 2-core host runs from ~4 to ~11 ms per boot
    # (CI once saw init_start's median at 10.6 and payload_start's at 5.1: a 5.5 ms gap)
    assert abs(paired["phases"]["init"]) < 15 and abs(paired["phases"]["payload"]) < 15, paired
    assert "trace vs exit in the same boots" in done.stdout


def test_serial_channel_times_probes_from_console_lines(built, tmp_path):
    out = tmp_path / "r.json"
    done = appliance("bench", str(built["benchmark"]), "--channel", "serial", "-n", "1", "--warmup", "0",
                     "--accel", "tcg", "-o", str(out))
    assert done.returncode == 0, done.stderr
    run = json.loads(out.read_text())["runs"][0]
    assert [e["source"] for e in run["events"]] == ["host", "serial", "serial", "serial", "serial", "host"]
    assert 0 < run["phases_ms"]["payload"] < 5000 and run["phases_ms"]["kernel"] is None


def test_perf_channel_refuses_clearly_without_kvm(built):
    done = appliance("bench", str(built["minimal"]), "--channel", "perf", "--accel", "tcg", "-n", "1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: the perf channel is not available here because")


def test_compare_against_itself_finds_no_difference(minimal_kernel_bundle, tmp_path):
    # the minimal kernel boots in well under a second under TCG (Debian's in about four):
    # an A/A comparison asks nothing of the kernel but that both sides boot the same one
    out = tmp_path / "cmp.json"
    done = appliance("compare", str(minimal_kernel_bundle), str(minimal_kernel_bundle), "-n", "8", "--warmup", "1",
                     "--accel", "tcg", "--confidence", "0.99", "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["comparison"]["rows"]
    assert {r["phase"] for r in rows} >= {"kernel", "to_init", "total"}
    assert all(r["verdict"] is None for r in rows), rows
    assert all(r["ci"][0] <= 1 <= r["ci"][1] for r in rows), rows
    assert "no phase differs" in done.stdout


def test_compare_decides_a_deliberate_slowdown_and_stops_early(minimal_kernel_bundle, tmp_path):
    # B runs the payload's file work 60 times instead of once: a payload several times
    # longer, an effect no host noise can hide; payload is the primary phase, so six
    # boots a side decide it at the first look of a sequential run. (The benchmark
    # appliance on the minimal kernel: the payload is the same, the boots seconds shorter.)
    out = tmp_path / "cmp.json"
    target = str(minimal_kernel_bundle)
    done = appliance("compare", target, target, "-n", "6", "--max-n", "18",
                     "--warmup", "0", "--accel", "tcg", "--primary", "payload",
                     "--append-b", 'appliance_payload="/bin/bench 60"', "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    rows = {r["phase"]: r for r in doc["comparison"]["rows"]}
    assert rows["payload"]["ratio"] > 2, rows["payload"]
    assert "slower in payload" in rows["payload"]["verdict"]
    assert doc["comparison"]["sequential"] == {"looks": [6, 12, 18], "stopped_after": 6, "reason": "payload differs"}
    assert len([r for r in doc["b"]["runs"] if not r["warmup"]]) == 6
    assert all("host_load" in r and "disturbed" in r["host_load"] for r in doc["a"]["runs"])
    assert "sequential: 6 boots per side of at most 18: payload differs" in done.stdout


def test_keep_going_records_every_failure_and_exits_nonzero(built, tmp_path):
    out = tmp_path / "r.json"
    done = appliance("bench", str(built["minimal"]), "-n", "2", "--warmup", "0", "--timeout", "1", "--keep-going",
                     "--accel", "tcg", "-o", str(out))
    assert done.returncode == 1
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["failed_runs"] == 2
    assert doc["failures"] == {"guest did not finish within 1 s (hang?); QEMU was killed": 2}
    assert "2 boot(s) failed: guest did not finish within 1 s" in done.stderr


def test_doctor_explains_each_check():
    done = appliance("doctor")
    lines = done.stdout.splitlines()
    assert any(line.startswith("[ok] qemu-system-x86_64: ") for line in lines)
    assert any("QEMU trace backend usable" in line for line in lines)
    # on a host without working KVM (this one) a warning with advice, never a plain [ok]
    assert any(line.startswith("[ok] KVM usable") or (line.startswith("[warn] KVM not usable") and "nested" in line)
               for line in lines)
    assert any(line.startswith("[ok] setpriv: ") for line in lines) and any("isolinux.bin" in line for line in lines)
    assert any("perf channel" in line for line in lines)
    assert any("host clocksource" in line for line in lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_temporary_disk_fails_the_measurement_instead_of_passing_it_off(built, tmp_path):
    """QEMU says nothing when its trace or console write hits ENOSPC: a boot whose folder
    filled up is a failed boot, said so, never a run with phases missing marked ok."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(small)], check=True)
    try:
        out = tmp_path / "r.json"
        env = {**os.environ, "TMPDIR": str(small)}
        done = subprocess.run([sys.executable, "-m", "appliance", "bench", str(built["benchmark"]), "-n", "1",
                               "--warmup", "0", "--accel", "tcg", "-o", str(out)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode != 0
        assert "ran out of space" in done.stderr or "is full" in done.stderr, done.stderr
        doc = json.loads(out.read_text())
        assert [r["ok"] for r in doc["runs"]] == [False] and not doc["complete"]
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_lost_trace_data_is_named():
    from appliance.boot.measure import lost_data
    from appliance.boot.qemu import Channel
    from appliance.probes import Event

    here = Path(tempfile.gettempdir())
    console = [("init_start", 1), ("payload_start", 2), ("payload_end", 3)]
    whole = [Event(n, t, "trace") for n, t in console]
    assert lost_data(here, console, whole, Channel.TRACE) is None
    assert "lacks probes the guest's console shows (payload_start, payload_end)" in lost_data(
        here, console, whole[:1], Channel.TRACE)
    assert lost_data(here, console, [], Channel.TRACE) is None  # no probe traced at all: the port, not the disk
    # a payload's own probe printed without its port write (its ioperm failed) is not lost data
    assert lost_data(here, [*console, ("work_done", 4)], whole, Channel.TRACE) is None

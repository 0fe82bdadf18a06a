"""Boots spread over a real Dask cluster: a scheduler and `appliance worker` processes
on 127.0.0.1, compares across them, a worker killed mid-run, Ctrl-C, and local:2."""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, appliance
from tests.dask_cluster import cluster

pytestmark = pytest.mark.boot

SLOW_B = 'appliance_payload="/bin/bench 60"'  # the payload's file work 60 times: several times longer


def test_a_compare_across_two_hosts_blocks_by_host_and_finds_the_slowdown(minimal_kernel_bundle, tmp_path):
    out = tmp_path / "cmp.json"
    target = str(minimal_kernel_bundle)  # the benchmark appliance on the minimal kernel: boots of 0.6 s
    with cluster(["hostA", "hostB"]) as fleet:
        done = appliance("compare", target, target, "-n", "6", "--warmup", "0",
                         "--accel", "tcg", "--primary", "payload", "--append-b", SLOW_B, *fleet.client_args(),
                         "-o", str(out), timeout=900)
        assert done.returncode == 0, done.stderr
        # the bundle went to each worker once, and was verified there
        assert done.stderr.count("fleet: sent") == 2, done.stderr
        again = appliance("bench", target, "-n", "2", "--warmup", "0", "--accel", "tcg",
                          *fleet.client_args(), "-o", str(tmp_path / "b.json"), timeout=600)
        assert again.returncode == 0, again.stderr
        assert "fleet: sent" not in again.stderr  # both workers hold the digest: nothing travels
    doc = json.loads(out.read_text())
    for side in ("a", "b"):
        runs = doc[side]["runs"]
        assert {r["worker"]["host_name"] for r in runs} == {"hostA", "hostB"}
        assert sorted({r["block"] for r in runs}) == [1, 2] and len(runs) == 6
        assert set(doc[side]["fleet"]["workers"]) == {r["worker"]["address"] for r in runs}
    result = doc["comparison"]
    payload = next(r for r in result["rows"] if r["phase"] == "payload")
    # the single-host test's verdict (test_measure), now pooled over two hosts
    assert payload["blocked_by_host"] and payload["ratio"] > 2 and "slower in payload" in payload["verdict"]
    assert [h["host"] for h in result["hosts"]] == ["hostA", "hostB"]
    assert all(h["ratio"] > 2 for h in result["hosts"]) and not result["hosts_disagree"]
    assert "per host (payload" in done.stdout


def bench_booting_on(fleet, label: str, bundle, n: int, out) -> subprocess.Popen:
    """`appliance bench BUNDLE -n N` on FLEET, returned once worker LABEL runs a QEMU of it."""
    run = subprocess.Popen([sys.executable, "-m", "appliance", "bench", str(bundle), "-n", str(n), "--warmup", "0",
                            "--accel", "tcg", *fleet.client_args(), "-o", str(out)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not fleet.qemus(label) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    if not fleet.qemus(label):
        run.kill()
        raise AssertionError(f"{label} never booted: {fleet.log(label)}")
    return run


def test_a_worker_killed_mid_block_loses_nothing_and_duplicates_nothing(built, tmp_path):
    out = tmp_path / "r.json"
    with cluster(["w1", "w2"]) as fleet:
        run = bench_booting_on(fleet, "w1", built["benchmark"], 4, out)
        try:
            fleet.workers["w1"].send_signal(signal.SIGKILL)
            stdout, stderr = run.communicate(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 0, stderr
        time.sleep(1)
        assert fleet.qemus("w1") == []  # died with their worker
    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert len(runs) == 4 and all(r["ok"] for r in runs)
    # the lost worker is in the results and was said (issue 36: it was in neither)
    assert [w["wave"] for w in doc["fleet"]["lost_workers"]] == [1] and "left during wave 1" in stderr
    # every block once, whole: the killed worker's block ran again on the other
    by_block: dict[int, list[dict]] = {}
    for r in runs:
        by_block.setdefault(r["block"], []).append(r)
    assert sorted(by_block) == [1, 2] and all(len(v) == 2 for v in by_block.values())
    assert all(len({r["worker"]["name"] for r in v}) == 1 for v in by_block.values())
    assert {r["worker"]["name"] for r in runs} == {"w2"}


def test_ctrl_c_cancels_the_blocks_and_leaves_no_qemu(built, tmp_path):
    with cluster(["c1"]) as fleet:
        run = bench_booting_on(fleet, "c1", built["benchmark"], 20, tmp_path / "r.json")
        try:
            run.send_signal(signal.SIGINT)
            _, stderr = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 130, stderr
        assert "cancelled" in stderr.strip().splitlines()[-1], stderr
        deadline = time.monotonic() + 10
        while fleet.qemus("c1") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert fleet.qemus("c1") == []
        assert fleet.workers["c1"].poll() is None  # the worker stays for the next run


def test_local_2_spreads_a_bench_over_two_in_process_workers_and_records_them(built, tmp_path):
    out = tmp_path / "r.json"
    done = appliance("bench", str(built["minimal"]), "-n", "4", "--warmup", "0", "--accel", "tcg",
                     "-o", str(out), timeout=600, env={"APPLIANCE_CLUSTER": "local:2"})
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert len(runs) == 4 and all(r["ok"] for r in runs)
    assert len({r["worker"]["name"] for r in runs}) == 2 and sorted({r["block"] for r in runs}) == [1, 2]
    assert doc["fleet"]["cluster"] == "local:2"
    assert "recorded: run set(s)" in done.stderr
    history = appliance("history", "--json")
    assert history.returncode == 0, history.stderr


def test_an_unreachable_scheduler_is_one_line(built):
    done = appliance("bench", str(built["minimal"]), "-n", "1", "--accel", "tcg", "--cluster", "tcp://127.0.0.1:9")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def test_the_scheduler_gone_stops_with_what_ran_and_resume_goes_on(minimal_kernel_bundle, tmp_path):
    out = tmp_path / "cmp.json"
    # -n 3 cannot decide (3 boots a side: the smallest p is 0.1), so the run goes on to
    # a second wave, which 6 boots a side of a payload twice as long do decide; the
    # scheduler dies once the first wave's block is in
    target = str(minimal_kernel_bundle)  # the benchmark appliance on the minimal kernel: boots of 0.6 s
    argv = ["compare", target, target, "-n", "3", "--max-n", "9", "--warmup", "0",
            "--accel", "tcg", "--primary", "payload", "--append-b", SLOW_B, "-o", str(out)]
    with cluster(["r1"]) as fleet:
        run = subprocess.Popen([sys.executable, "-m", "appliance", *argv, *fleet.client_args()], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            seen = []
            for line in run.stderr:
                seen.append(line)
                if line.startswith("fleet: block 1 "):
                    fleet.scheduler.send_signal(signal.SIGKILL)
                    break
            rest = run.stderr.read()
            run.wait(300)
        finally:
            if run.poll() is None:
                run.kill()
        assert run.returncode == 1, "".join(seen) + rest
        last = rest.strip().splitlines()[-1]
        assert last.startswith(f"error: lost the Dask scheduler at {fleet.address} after 3 of 9 rounds"), rest
        assert "--resume" in last
    partial = json.loads(out.read_text())
    assert not partial["complete"] and len(partial["a"]["runs"]) == len(partial["b"]["runs"]) == 3
    with cluster(["r2"]) as fleet:
        done = appliance(*argv, *fleet.client_args(), "--resume", timeout=900)
        assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"]
    for side in ("a", "b"):
        runs = doc[side]["runs"]
        assert len(runs) == 6 and [r["index"] for r in runs] == list(range(6))
        assert sorted({r["block"] for r in runs}) == [1, 2]  # the first block kept, one more, none twice
        assert {r["worker"]["host_name"] for r in runs} == {"r1", "r2"}
    assert doc["comparison"]["sequential"] == {"looks": [3, 6, 9], "stopped_after": 6, "reason": "payload differs"}


def test_a_worker_that_cannot_boot_anything_says_why_and_does_not_join(tmp_path):
    done = appliance("worker", "tcp://127.0.0.1:9", "--cache", str(tmp_path / "c"), env={"PATH": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: this host has no QEMU to boot bundles with: install qemu-system-x86 (or qemu-system-arm), "
        "then start the worker again")

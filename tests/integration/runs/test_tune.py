"""A real `appliance tune` over three cheap knobs under TCG, and resuming it."""

import json

import pytest

from tests.conftest import BUILD, appliance, scons

pytestmark = pytest.mark.boot
KNOBS = "cryptomgr.notests,tsc.reliable,128 MiB"


def test_tune_ranks_three_knobs_and_resumes(minimal_kernel_bundle, tmp_path):
    out = tmp_path / "tune.json"
    done = appliance("tune", str(minimal_kernel_bundle), "--knobs", KNOBS, "-n", "3", "--warmup", "0",
                     "--accel", "tcg", "--no-combine", "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] and set(doc["variants"]) == set(KNOBS.split(","))
    rows = {r["knob"]: r for r in doc["tune"]["rows"]}
    assert set(rows) == set(KNOBS.split(",")) and all(r["to_init"] and not r["broke"] for r in rows.values())
    assert all(len([x for x in side["runs"] if x["ok"]]) == 3 for side in [doc["base"], *doc["variants"].values()])
    for knob in KNOBS.split(","):
        assert any(line.startswith(knob) for line in done.stdout.splitlines())
    again = appliance("tune", str(minimal_kernel_bundle), "--knobs", KNOBS, "-n", "4", "--warmup", "0",
                      "--accel", "tcg", "--no-combine", "--resume", "-o", str(out), timeout=900)
    assert again.returncode == 0, again.stderr
    assert "resuming after 3" in again.stderr
    resumed = json.loads(out.read_text())
    assert len(resumed["base"]["runs"]) == 4 and resumed["base"]["runs"][:3] == doc["base"]["runs"]
    report = appliance("report", str(out), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0 and "tune: what each knob changes" in (tmp_path / "r.html").read_text()


def test_the_debian_kernel_decompressed_ahead_boots_through_pvh_and_skips_the_decompressor(built, tmp_path):
    # under TCG the bzImage's decompression takes seconds; the PVH variant skips it: an
    # effect of about 40% of the kernel phase, far beyond this host's boot-to-boot spread
    out = tmp_path / "tune.json"
    done = appliance("tune", str(built["benchmark"]), "--knobs", "kernel decompressed (PVH)", "-n", "3",
                     "--warmup", "0", "--accel", "tcg", "--no-combine", "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    pvh = doc["variants"]["kernel decompressed (PVH)"]
    assert all(r["ok"] for r in pvh["runs"]) and len(pvh["runs"]) == 3
    row = doc["tune"]["rows"][0]
    assert row["knob"] == "kernel decompressed (PVH)" and row["to_init"]["ratio"] < 0.9, row


def test_range_across_the_debian_and_the_minimal_kernel_flags_the_step(built, minimal_kernel_bundle, tmp_path):
    out = tmp_path / "range.json"
    done = appliance("range", str(built["benchmark"]), str(built["benchmark"] / "kernel"),
                     str(minimal_kernel_bundle / "kernel"), "-n", "4", "--warmup", "0", "--accel", "tcg",
                     "--svg", str(tmp_path / "r.svg"), "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert len(doc["series"]) == 2 and all(r["ok"] for side in doc["series"] for r in side["runs"])
    assert "<- real step" in done.stdout  # the minimal kernel's kernel phase is several times shorter
    assert (tmp_path / "r.svg").read_text().startswith("<svg")
    assert scons("appliance", "TEMPLATE=disk").returncode == 0  # a bundle with modules of its own kernel
    refused = appliance("range", str(BUILD / "disk"), str(built["benchmark"] / "kernel"),
                        str(minimal_kernel_bundle / "kernel"), "--accel", "tcg")
    assert refused.returncode == 1 and "carries modules of its own kernel" in refused.stderr


def test_an_interrupted_tune_keeps_its_rounds_and_resumes(minimal_kernel_bundle, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    out = tmp_path / "tune.json"
    argv = [sys.executable, "-m", "appliance", "tune", str(minimal_kernel_bundle), "--knobs", "tsc.reliable",
            "-n", "6", "--warmup", "0", "--accel", "tcg", "--no-combine", "-o", str(out)]
    running = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not out.is_file() and time.monotonic() < deadline:  # written after the first round
        time.sleep(0.1)
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 130 and "interrupted" in stderr
    partial = json.loads(out.read_text())
    kept = len(partial["base"]["runs"])
    assert partial["complete"] is False and 1 <= kept < 6
    done = appliance(*argv[3:], "--resume", timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"resuming after {min(kept, len(partial['variants']['tsc.reliable']['runs']))}" in done.stderr
    resumed = json.loads(out.read_text())
    assert resumed["complete"] and len(resumed["base"]["runs"]) == 6 and len(resumed["variants"]["tsc.reliable"]["runs"]) == 6


def test_rebuild_knobs_drop_modules_and_a_needed_one_breaks_the_boot(tmp_path):
    assert scons("appliance", "TEMPLATE=disk").returncode == 0
    listed = appliance("tune", str(BUILD / "disk"), "--rebuild", "--list")
    assert "without virtio_blk" in listed.stdout and "initrd uncompressed" in listed.stdout
    out = tmp_path / "tune.json"
    knobs = "without crc32c_intel,without virtio_blk"  # appliance_rootwait: the missing root fails in 2 s, not 30
    done = appliance("tune", str(BUILD / "disk"), "--rebuild", "--knobs", knobs, "-n", "3", "--warmup", "0",
                     "--accel", "tcg", "--no-combine", "--timeout", "60", "--append", "appliance_rootwait=2",
                     "-o", str(out), timeout=900)
    assert done.returncode == 0, done.stderr
    rows = {r["knob"]: r for r in json.loads(out.read_text())["tune"]["rows"]}
    # the root disk is on virtio-blk: without its driver the init cannot mount it, and the
    # knob is reported as breaking the boot, never as a saving
    broke = rows["without virtio_blk"]["broke"]
    assert broke and any("cannot mount root" in reason for reason in broke), broke
    assert any("did not become usable within 2 s" in reason for reason in broke), broke  # a stated deadline
    assert not rows["without crc32c_intel"]["broke"] and rows["without crc32c_intel"]["to_init"]

"""Snapshots for real (TCG): the web appliance saved at service_ready and restored twice
at once, each serving its page through its own fresh forward; the benchmark appliance
saved at payload_start and restored to payload_end; and every snapshot that cannot be
restored refused in one line before QEMU starts."""

import json
import shutil
import signal
import subprocess
import sys

import pytest

from appliance import seal, snapshot
from tests.conftest import ROOT, appliance, qemu_children_of
from tests.integration.runs.test_service import PAGE, fetch

pytestmark = pytest.mark.boot


@pytest.fixture(scope="module")
def web_snapshot(tmp_path_factory):
    from tests.integration.runs.test_service import build

    web = build("web")
    out = tmp_path_factory.mktemp("snap") / "web.snap"
    done = appliance("snapshot", str(web), "--at", "service_ready", "--accel", "tcg", "-o", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    return web, out


# a name a shell would run parts of: the state must go where it says, and nothing may run
HOSTILE = "be nch;touch PWNED;$(touch PWNED2)`touch PWNED3`'q\"x.snap"


@pytest.fixture(scope="module")
def bench_snapshot(built, tmp_path_factory):
    folder = tmp_path_factory.mktemp("snap")
    out = folder / HOSTILE
    done = appliance("snapshot", str(built["benchmark"]), "--accel", "tcg", "-o", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == [HOSTILE]  # no staging folder left
    assert not any((ROOT / name).exists() for name in ("PWNED", "PWNED2", "PWNED3"))  # the cwd QEMU ran in
    assert (out / snapshot.STATE).stat().st_size > 1 << 20
    return built["benchmark"], out


def test_a_snapshot_folder_has_its_manifest_and_state(web_snapshot):
    _, out = web_snapshot
    taken = snapshot.load(out)
    assert taken.point == "service_ready" and taken.manifest["vm"]["memory_mib"] == 256
    assert 0 < taken.state_bytes < 256 << 20  # zero pages are not saved whole
    assert taken.manifest["vm"]["qemu_version"].startswith("QEMU emulator version")


def test_two_restores_of_one_snapshot_serve_at_once(web_snapshot, tmp_path):
    web, out = web_snapshot
    procs = [subprocess.Popen([sys.executable, "-m", "appliance", "run", str(web), "--restore", str(out), "--serve",
                               "--accel", "tcg"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    ports = []
    try:
        for proc in procs:
            lines = []
            while not any("forward tcp" in line for line in lines):
                line = proc.stderr.readline()
                assert line, f"serve ended before it was ready: {''.join(lines)}"
                lines.append(line)
            ports.append(int(next(x for x in lines if "forward tcp" in x).split("127.0.0.1:")[1].split()[0]))
        assert len(set(ports)) == 2  # each launch forwards a free port of its own
        for port in ports:
            assert fetch(port, 60) == PAGE
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        codes = [proc.wait(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes == [0, 0]
    assert all(not qemu_children_of(p.pid) for p in procs)


def test_a_restore_is_timed_against_a_cold_boot(web_snapshot, tmp_path):
    web, out = web_snapshot
    done = appliance("compare", str(web), str(web), "--restore-b", str(out), "--primary", "service_ready", "-n", "3",
                     "--warmup", "0", "--accel", "tcg", "-o", str(tmp_path / "c.json"), "--no-record", timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "c.json").read_text())
    assert all(r.get("restored") for r in doc["b"]["runs"]) and not any(r.get("restored") for r in doc["a"]["runs"])
    row = next(r for r in doc["comparison"]["rows"] if r["phase"] == "service_ready")
    assert row["ratio"] < 0.5  # a restore answers long before a boot does (under TCG: ~0.06x)


def test_a_payload_snapshot_restores_to_its_end(bench_snapshot, tmp_path):
    bench, out = bench_snapshot
    done = appliance("bench", str(bench), "--restore", str(out), "-n", "2", "--warmup", "0", "--accel", "tcg",
                     "-o", str(tmp_path / "r.json"), "--no-record", timeout=300)
    assert done.returncode == 0, done.stderr
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    for run in runs:
        names = [e["name"] for e in run["events"]]
        assert run["restored"] and "vm_resumed" in names and "payload_end" in names
        assert "init_start" not in names and "fw_entry" not in names  # nothing a restore did not do
        assert 0 < run["phases_ms"]["restore"] < run["phases_ms"]["total"]
        assert run["phases_ms"]["after_restore"] > 0 and run["phases_ms"]["kernel"] is None


def refused(bench, snap, *extra):
    done = appliance("run", str(bench), "--restore", str(snap), "--accel", "tcg", *extra, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and len(errors) == 1, done.stderr
    assert "appliance-probe" not in done.stderr and "qemu-system" not in done.stderr  # nothing was started
    return errors[0]


def changed(out, tmp_path, change):
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    change(copy)
    return copy


def test_snapshots_that_cannot_be_restored_are_one_line_each(bench_snapshot, web_snapshot, tmp_path):
    bench, out = bench_snapshot
    web, web_out = web_snapshot
    assert "it was taken of another bundle" in refused(bench, web_out)
    assert "it was taken with cpu_model 'max', this boot has 'qemu64'" in refused(bench, out, "--cpu", "qemu64")

    def manifest(key, value, reseal=True):
        def edit(folder):
            data = json.loads((folder / snapshot.MANIFEST).read_text())
            data["vm"][key] = value
            (folder / snapshot.MANIFEST).write_text(json.dumps(seal.sealed(data) if reseal else data))
        return edit

    def retarget(folder):  # the attack of issue 36: another bundle's digest written in by hand
        data = json.loads((folder / snapshot.MANIFEST).read_text())
        data["bundle"]["digest"] = snapshot.load(web_out).bundle_digest
        (folder / snapshot.MANIFEST).write_text(json.dumps(data))

    assert "edited after it was written" in refused(web, changed(out, tmp_path / "r", retarget))
    assert "edited after it was written" in refused(bench, changed(out, tmp_path / "e",
                                                                   manifest("memory_mib", 128, reseal=False)))

    assert "it was taken with qemu_version 'QEMU 9.9'" in refused(bench, changed(out, tmp_path / "q",
                                                                                 manifest("qemu_version", "QEMU 9.9")))
    assert "it was taken with memory_mib 128, this boot has 256" in refused(
        bench, changed(out, tmp_path / "m", manifest("memory_mib", 128)))
    assert "it was taken with machine 'q35-qboot'" in refused(bench, changed(out, tmp_path / "k",
                                                                            manifest("machine", "q35-qboot")))

    def truncate(folder):
        with open(folder / snapshot.STATE, "r+b") as state:
            state.truncate(1000)

    def tamper(folder):
        with open(folder / snapshot.STATE, "r+b") as state:
            state.seek(500)
            state.write(b"\xff\xfe")

    assert "(truncated?)" in refused(bench, changed(out, tmp_path / "t", truncate))
    assert "does not match its sha256" in refused(bench, changed(out, tmp_path / "x", tamper))
    assert "is not a snapshot (no snapshot.json)" in refused(
        bench, changed(out, tmp_path / "n", lambda f: (f / snapshot.MANIFEST).unlink()))
    done = appliance("bench", str(bench), "--restore", str(out), "--channel", "exit", "-n", "1", "--accel", "tcg",
                     "--no-record", "-o", str(tmp_path / "e.json"), timeout=120)
    assert done.returncode != 0 and "the exit channel (a boot per probe) cannot measure it" in done.stderr


RESEED = """[appliance]
description = "a payload that reads its randomness after a snapshot (pc-seabios: ACPI)"
[packages]
debian = ["busybox-static"]
[programs]
build = ["probe"]
[probes]
ready = 0x20
[init]
mounts = ["proc", "sysfs", "devtmpfs", "tmpfs"]
payload = ["/bin/busybox", "sh", "-c", '''/bin/probe 0x20 ready; /bin/busybox sleep 1
echo vmgenid: $(/bin/busybox ls /sys/bus/acpi/drivers/vmgenid)
echo uuid: $(/bin/busybox cat /proc/sys/kernel/random/uuid)''']
[vm]
machine = "pc-seabios"
memory_mib = 256
cmdline = "quiet"
"""


def test_restores_on_an_acpi_machine_get_a_new_vm_generation_id(tmp_path):
    """Issue 36: a snapshot on pc/q35 carries QEMU's vmgenid device, so each restore gives
    the guest a new generation ID and Linux's vmgenid driver reseeds its CRNG (microvm gets
    no VMGENID table from QEMU 7.2: docs/SNAPSHOTS.md). The restored guests see the driver
    bound to the device, and draw different values after the snapshot."""
    from tests.conftest import SCONS

    (tmp_path / "reseed.toml").write_text(RESEED)
    shutil.copyfile(ROOT / "rootfs_templates" / "shell.lock", tmp_path / "reseed.lock")
    done = subprocess.run([SCONS, "-Q", f"BUILD_DIR={tmp_path / 'build'}", "appliance",
                           f"TEMPLATE={tmp_path / 'reseed.toml'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    target, snap = tmp_path / "build" / "reseed", tmp_path / "reseed.snap"
    taken = appliance("snapshot", str(target), "--at", "ready", "--accel", "tcg", "-o", str(snap), timeout=300)
    assert taken.returncode == 0, taken.stderr
    seen = []
    for _ in range(2):
        restored = appliance("run", str(target), "--restore", str(snap), "--accel", "tcg", timeout=120)
        assert restored.returncode == 0, restored.stderr
        text = restored.stdout + restored.stderr
        assert "vmgenid: QEMUVGID:00" in text, text[-2000:]
        seen.append(next(line for line in text.splitlines() if line.startswith("uuid: ")))
    assert seen[0] != seen[1]

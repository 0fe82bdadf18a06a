"""aarch64 appliances under TCG on QEMU virt: Debian's arm64 kernel, the cross-built init
and payloads, the pruned device tree; the benchmark appliance's and the disk appliance's
probes reach the host through QEMU's write trace, and their payloads' results the console.
Then what works downstream (bench, release, inspect, dts) and what is refused."""

import json
import subprocess
from pathlib import Path

import pytest

from appliance import bundle as bundles
from appliance.assemble import devicetree
from tests.conftest import BUILD, ROOT, appliance, scons

pytestmark = pytest.mark.boot


def build(template: str, *options: str) -> Path:
    done = scons("appliance", f"TEMPLATE={template}", "ARCH=aarch64", *options)
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD / f"{Path(template).stem}+aarch64"


@pytest.fixture(scope="module")
def benchmark() -> Path:
    return build("benchmark")


def run(target: Path) -> tuple[dict, str]:
    done = appliance("run", str(target), "--accel", "tcg", "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_benchmark_appliance_boots_on_virt_and_probes_through_mmio(benchmark):
    target = bundles.load(benchmark)
    assert target.manifest["arch"] == "aarch64" and target.machine.value == "virt"
    kernel = target.manifest["build"]["kernel"]
    assert kernel["release"].endswith("-arm64") and kernel["lock"]["arch"] == "arm64"
    assert (benchmark / "kernel").read_bytes()[0x38:0x3C] == b"ARM\x64"  # arm64 Image magic
    result, console = run(benchmark)
    phases = result["phases_ms"]
    for phase in ("qemu", "kernel", "init", "payload", "total"):
        assert phases[phase] and phases[phase] > 0, phase
    assert phases["firmware"] is None  # QEMU loads the kernel itself: no firmware phase
    assert "bench: checksum" in console and "appliance-init: payload exited with status 0" in console
    names = [line.split()[1] for line in console.splitlines() if line.startswith("appliance-probe:")]
    assert names == ["init_start", "payload_start", "work_done", "payload_end"]


def test_disk_appliance_mounts_its_root_and_runs_from_it():
    target = build("disk")
    manifest = bundles.load(target).manifest
    assert manifest["device_tree"]["removed"] and "/virtio_mmio@a003e00" not in manifest["device_tree"]["removed"]
    result, console = run(target)
    phases = result["phases_ms"]
    assert phases["modules"] > 0 and phases["root"] > 0 and phases["payload"] > 0
    assert "appliance-module: virtio_blk " in console and "appliance-module: ext4 " in console
    assert "appliance-probe: init_root_mounted" in console and "payload exited with status 0" in console


def test_bench_release_inspect_and_dts_work_on_aarch64(benchmark, tmp_path):
    out = tmp_path / "results.json"
    done = appliance("bench", str(benchmark), "--accel", "tcg", "-n", "1", "--warmup", "0", "-o", str(out),
                     timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert runs[0]["ok"] and any(e["name"] == "work_done" and e["source"] == "trace" for e in runs[0]["events"])
    # the QEMU recorded is the one that booted it, with its own version (not the x86 runner's)
    assert Path(doc["host"]["qemu_path"]).name == "qemu-system-aarch64"
    assert doc["host"]["qemu_version"].startswith("QEMU emulator version")
    released = scons("release", "TEMPLATE=benchmark", "ARCH=aarch64")
    assert released.returncode == 0, released.stderr
    assert "no ISO for benchmark+aarch64" in released.stdout
    archive = BUILD / "release" / "benchmark+aarch64" / "benchmark+aarch64.tar.zst"
    info = appliance("inspect", str(archive), "--json")
    assert info.returncode == 0, info.stderr
    tree = json.loads(info.stdout)["device_tree"]
    assert tree["nodes"] < tree["nodes_qemu"] and "pcie" in " ".join(tree["removed"])
    dts = appliance("dts", str(benchmark))
    assert dts.returncode == 0 and dts.stdout.startswith("/dts-v1/;")
    source = tmp_path / "board.dts"
    source.write_text(dts.stdout)
    compiled = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "b.dtb"), str(source)],
                              capture_output=True, text=True, timeout=30)
    assert compiled.returncode == 0, compiled.stderr  # what the verb prints is DTS that dtc reads
    same = devicetree.parse((tmp_path / "b.dtb").read_bytes())
    assert devicetree.summary(same) == devicetree.summary(devicetree.parse((benchmark / "board.dtb").read_bytes()))


@pytest.mark.parametrize(("args", "words"), [
    (("run", "--machine", "microvm"), "is aarch64; microvm is an x86_64 machine"),
    (("bench", "--channel", "exit", "-n", "1", "--warmup", "0"), "isa-debug-exit, an x86 I/O port device"),
    (("run", "--accel", "kvm"), "KVM"),  # this host's KVM hangs guests; one that works cannot run arm64 on x86
])
def test_the_wrong_runner_is_one_line(benchmark, tmp_path, args, words):
    verb, *rest = args
    out = ("-o", str(tmp_path / "r.json")) if verb == "bench" else ()
    done = appliance(verb, str(benchmark), *rest, *out, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and len(errors) == 1, done.stderr
    assert words in errors[0]


def test_dts_of_an_x86_bundle_says_why_not(built):
    done = appliance("dts", str(built["benchmark"]))
    assert done.returncode != 0
    assert "has no device tree" in done.stderr and "only aarch64 bundles carry board.dtb" in done.stderr


def test_profiled_reports_over_virtio_on_aarch64(tmp_path):
    """profiled's virtio channel: virtio_console and the virtio-mmio transport come from
    the module closure (arm64's virtio core is built in, the transport a module)."""
    text = (ROOT / "rootfs_templates" / "profiled.toml").read_text().replace('channel = "serial"', 'channel = "virtio"')
    template = tmp_path / "profiled-virtio.toml"
    template.write_text(text + '\n[modules]\nrules = ["virtio_console"]\n')
    target = build(str(template))
    out = tmp_path / "r.json"
    done = appliance("bench", str(target), "--accel", "tcg", "-n", "1", "--warmup", "0", "-o", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())["runs"][0]
    assert not record["warnings"], record["warnings"]
    paths = [p["path"] for p in record["profiled"]["processes"]]
    assert "/bin/forker" in paths, paths  # the payload's fork and exec, seen by the guest

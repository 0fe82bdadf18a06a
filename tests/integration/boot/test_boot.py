"""Real boots under QEMU/TCG: what the guest did, and every way a boot can fail."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import bundle
from appliance.boot import accel, measure
from appliance.boot.qemu import BootSpec
from appliance.proc import find_tool
from tests.conftest import BUILD, ROOT, appliance, edit_manifest, qemu_children_of

pytestmark = pytest.mark.boot


def test_benchmark_boot_emits_probes_in_order_with_plausible_times(built):
    run = measure.boot(BootSpec(bundle.load(built["benchmark"]), "tcg", 120))
    names = [e.name for e in run.events]
    expected = ["qemu_exec", "fw_entry", "kernel_entry", "init_start", "payload_start", "work_done",
                "payload_end", "qemu_exit"]
    assert names == expected
    times = [e.host_time_ns for e in run.events]
    assert times == sorted(times)
    p = run.phases
    assert 1 < p["qemu"] < 2000 and 0 < p["firmware"] < 2000
    assert 100 < p["kernel"] < 60000  # a distro kernel under TCG: seconds
    assert 0 < p["init"] < 1000 and 0 < p["payload"] < 5000
    assert p["total"] > p["to_init"] > p["kernel"]
    # the guest's own clock agrees in order, and the payload really ran
    guest = [name for name, _ in run.console_probes]
    assert guest == ["init_start", "payload_start", "work_done", "payload_end"]
    assert run.payload_status == 0 and run.max_rss_kib > 10_000


def test_minimal_boot_has_init_but_no_payload(built):
    run = measure.boot(BootSpec(bundle.load(built["minimal"]), "tcg", 120))
    names = [e.name for e in run.events]
    assert "init_start" in names and "payload_start" not in names
    assert run.phases["payload"] is None and run.phases["kernel"] > 100


def test_bench_writes_results_with_statistics(built, tmp_path):
    out = tmp_path / "r.json"
    done = appliance("bench", str(built["minimal"]), "-n", "2", "--warmup", "1", "--accel", "tcg", "-o", str(out))
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["failed_runs"] == 0 and doc["accel"]["used"] == "tcg"
    assert [r["warmup"] for r in doc["runs"]] == [True, False, False]
    kernel = doc["summary"]["phases"]["kernel"]
    assert kernel["n"] == 2 and kernel["min"] <= kernel["median"] <= kernel["max"]
    assert doc["host"]["qemu_version"].startswith("QEMU emulator")
    assert doc["runs"][1]["qemu_max_rss_kib"] > 10_000
    assert "kernel" in done.stdout and "to_init" in done.stdout
    stats = appliance("stats", str(out))
    assert stats.returncode == 0 and stats.stdout.splitlines()[2].split()[0] == "qemu"


@pytest.mark.parametrize("template, extra, message", [
    ("minimal", "rdinit=/no/such/init", "error: kernel panic: Kernel panic - not syncing"),
    ("benchmark", "appliance_payload=/bin/nothing",
     "error: payload failed: cannot exec payload /bin/nothing: No such file or directory"),
    # PID 1 exiting (an init crash): the payload run as init returns
    ("benchmark", "rdinit=/bin/bench", "error: kernel panic: Kernel panic - not syncing: Attempted to kill init!"),
])
def test_guest_failure_is_one_error_line_with_console_tail(built, template, extra, message):
    done = appliance("run", str(built[template]), "--accel", "tcg", "--append", extra)
    assert done.returncode == 3
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(message), done.stderr
    # run streamed the console: no tail printed again, the error names the kept log instead
    assert "console tail:" not in done.stderr
    log = Path(error.rsplit("(the whole console: ", 1)[1].rstrip(")"))
    try:
        assert "appliance-init" in log.read_text() or "Kernel panic" in log.read_text()
    finally:
        shutil.rmtree(log.parent)


def test_qemu_that_cannot_start_reports_its_error(built):
    done = appliance("run", str(built["minimal"]), "--accel", "tcg", "--cpu", "no-such-cpu")
    assert done.returncode == 3
    assert "error: QEMU exited with status 1: qemu-system-x86_64: unable to find CPU model 'no-such-cpu'" in done.stderr
    assert "command: " in done.stderr and "-cpu no-such-cpu" in done.stderr


def test_accel_kvm_when_kvm_is_broken_is_one_clear_line(built):
    if accel.kvm_works(find_tool("qemu-system-x86_64"))[0]:
        pytest.skip("KVM works on this host")
    done = appliance("run", str(built["minimal"]), "--accel", "kvm")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --accel kvm: KVM is not usable: ")
    assert lines[0].endswith("use --accel tcg or auto")


def test_hang_times_out_and_kills_qemu(built):
    start = time.monotonic()
    done = appliance("run", str(built["minimal"]), "--accel", "tcg", "--timeout", "1.5")
    assert done.returncode == 3
    assert "did not finish within 1.5 s" in done.stderr
    assert time.monotonic() - start < 30


def test_tampered_bundle_is_refused(copy_bundle):
    folder = copy_bundle("minimal")
    (folder / "initrd").write_bytes(b"not an initrd")
    done = appliance("run", str(folder), "--accel", "tcg")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: bundle {folder}: initrd has 13 bytes, manifest says "
        f"{json.loads((folder / 'bundle.json').read_text())['files']['initrd']['size']}: rebuild it or fetch it again"]


def test_a_kernel_truncated_before_the_bundle_was_made_is_a_failed_boot(copy_bundle):
    # what a build from a damaged cache would have made: a half kernel whose digest the
    # manifest records; QEMU may well exit 0, but the init never ran
    from appliance import bundle

    folder = copy_bundle("minimal")
    kernel = folder / "kernel"
    kernel.write_bytes(kernel.read_bytes()[: kernel.stat().st_size // 2])
    edit_manifest(folder, lambda m: m["files"].update(kernel=bundle.file_entry(kernel)))
    done = appliance("bench", str(folder), "-n", "1", "--warmup", "0", "--accel", "tcg", "--timeout", "60")
    assert done.returncode != 0
    assert "error: trace channel, boot 1: " in done.stderr
    assert "the boot ended without init_start: the kernel never ran the init" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupt_leaves_no_qemu_and_marks_results_partial(built, tmp_path, sig):
    out = tmp_path / "r.json"
    bench = subprocess.Popen([sys.executable, "-m", "appliance", "bench", str(built["minimal"]), "-n", "5",
                              "--accel", "tcg", "-o", str(out)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        time.sleep(0.2)
        children = qemu_children_of(bench.pid)
    assert children, "bench never started QEMU"
    bench.send_signal(sig)
    _, stderr = bench.communicate(timeout=30)
    if sig == signal.SIGKILL:  # nothing of ours runs: the kernel's parent-death signal ends QEMU
        assert bench.returncode == -signal.SIGKILL
        time.sleep(1)
    else:
        assert bench.returncode == 130
        assert "interrupted" in stderr and f"the partial results (marked incomplete) are in {out}" in stderr
    for pid in children:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        # Z: dead, waiting for whoever inherited it (after SIGKILL of the runner) to reap it
        assert state == "Z", f"QEMU {pid} is still running (state {state})"
    if sig != signal.SIGKILL:
        assert json.loads(out.read_text())["complete"] is False


def test_accel_auto_resolves_and_explains():
    choice = accel.choose("auto")
    works, why = accel.kvm_works(find_tool("qemu-system-x86_64"))
    assert choice.accel == ("kvm" if works else "tcg")
    if not works:
        assert choice.reason == f"KVM unusable: {why}"


@pytest.fixture(scope="module")
def signal_bundles(built, tmp_path_factory):
    """One bundle per signal: a payload that sends it to PID 1 and then waits."""
    from tests.conftest import scons

    out = {}
    for sig in ("TERM", "USR1", "INT"):
        template = tmp_path_factory.mktemp("t") / f"signal-{sig.lower()}.toml"
        template.write_text(f'[init]\npayload = ["/bin/signal-init", "{sig}"]\n[programs]\nbuild = ["signal-init"]\n'
                            '[vm]\ncmdline = "quiet"\n')
        done = scons("appliance", f"TEMPLATE={template}")
        assert done.returncode == 0, done.stderr
        out[sig] = BUILD / template.stem
    return out


@pytest.mark.parametrize("sig, action", [("TERM", "power-off"), ("USR1", "power-off"), ("INT", "reboot")])
def test_init_stops_the_machine_on_signal(signal_bundles, sig, action):
    run = measure.boot(BootSpec(bundle.load(signal_bundles[sig]), "tcg", 120), echo=None)
    names = [e.name for e in run.events]
    assert names[-3:] == ["payload_start", "payload_end", "qemu_exit"]  # QEMU ended by itself
    assert run.payload_status is None
    assert f"appliance-init: {action} requested by signal; payload stopped" in run.console
    assert ("reboot: Restarting system" if action == "reboot" else "reboot: Power down") in run.console


def test_payload_arguments_reach_the_payload_exactly(built, tmp_path):
    """Spaces, tabs, quotes, a newline, a % and non-ASCII: each argument arrives as one
    argv word, byte for byte (init.conf carries them %-encoded, the init decodes)."""
    from appliance.assemble.template import parse_template
    from tests.conftest import scons

    words = ["a b  c", "tab\there", "q'\"uote", "new\nline", "ünï©ødé", "100%", "%41", "echo hi; run"]
    template = tmp_path / "args.toml"
    payload = ", ".join(json.dumps(w) for w in ["/bin/args", *words])
    template.write_text(f'[init]\npayload = [{payload}]\n[programs]\nbuild = ["args"]\n[vm]\ncmdline = "quiet"\n')
    assert parse_template("args", template.read_text(), tmp_path).payload[1:] == tuple(words)
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stderr
    run = measure.boot(BootSpec(bundle.load(BUILD / "args"), "tcg", 120), echo=None)
    got = [bytes.fromhex(line.split(": ", 1)[1]).decode() for line in run.console.splitlines()
           if line.startswith("appliance-arg: ")]
    assert got == ["/bin/args", *words]


def test_the_init_names_the_background_processes_it_kills_at_power_off(built, tmp_path):
    from tests.conftest import scons

    template = tmp_path / "background.toml"
    template.write_text('[init]\npayload = ["/bin/forker", "background"]\n[programs]\nbuild = ["forker"]\n'
                        '[vm]\ncmdline = "quiet"\n')
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stderr
    run = measure.boot(BootSpec(bundle.load(BUILD / "background"), "tcg", 120), echo=None)
    assert run.payload_status == 0
    killed = [line for line in run.console.splitlines() if "still running at power-off, killed: pid" in line]
    assert len(killed) == 1 and killed[0].rstrip().endswith("(forker)"), run.console[-600:]

"""profiled on real boots under TCG: the forker payload's processes in order, memory per
stage, the kernel log with timestamps, over a second serial port and over virtio-console;
and the clear note from a kernel without process events (the minimal kernel)."""

import json

import pytest

from appliance import bundle, guestlog
from appliance.boot import measure
from appliance.boot.qemu import BootSpec
from tests.conftest import BUILD, ROOT, appliance, scons

pytestmark = pytest.mark.boot


def _build(template) -> bundle.Bundle:
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stdout + done.stderr
    name = template if "/" not in str(template) else template.stem
    return bundle.load(BUILD / str(name))


def _boot(target: bundle.Bundle) -> measure.BootRun:
    return measure.boot(BootSpec(target, "tcg", 120))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    _build("profiled")
    out = tmp_path_factory.mktemp("p") / "profiled.json"
    done = appliance("bench", str(BUILD / "profiled"), "-n", "1", "--warmup", "0", "--accel", "tcg",
                     "-o", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


def test_every_child_forks_execs_and_exits_in_order(results):
    doc, _ = results
    run = doc["runs"][0]
    assert run["profiled"]["complete"] and run["profiled"]["problems"] == []
    procs = [p for p in run["profiled"]["processes"] if p["path"].startswith("/bin/forker")]
    parent = next(p for p in procs if p["path"] == "/bin/forker")
    children = [p for p in procs if p["ppid"] == parent["pid"]]
    assert [c["path"] for c in children] == ["/bin/forker child 1", "/bin/forker child 2", "/bin/forker child 3"]
    # in order; equal times are allowed: on a busy host the guest's clocksource can fall back
    # from the TSC to jiffies (its watchdog), whose 4 ms steps give fork and exec one stamp
    for child, n in zip(children, (1, 2, 3), strict=True):
        assert child["fork_ns"] <= child["exec_ns"] <= child["exit_ns"]
        assert child["status"] == n << 8  # exit(n), as a wait status
    for before, after in zip(children, children[1:], strict=False):
        assert before["exit_ns"] <= after["fork_ns"]  # one after the other
    assert parent["fork_ns"] <= children[0]["fork_ns"] and children[-1]["exit_ns"] <= parent["exit_ns"]


def test_memory_per_stage_and_kernel_log_with_timestamps(results):
    doc, stdout = results
    run = doc["runs"][0]
    memory = run["profiled"]["memory"]
    assert list(memory) == ["init_start", "payload_end"]
    assert 150_000 < memory["init_start"]["MemTotal"] <= 256 * 1024
    assert 0 < memory["payload_end"]["used_kib"] < memory["payload_end"]["MemTotal"]
    assert "init_start" in doc["summary"]["guest_memory_kib"] and "guest memory (profiled" in stdout
    log = guestlog.parse(run["profiled_raw"])
    kmsg = log.of("kmsg")
    assert len(kmsg) > 100 and kmsg[0]["msg"].startswith("Linux version 6.1.0")
    assert sorted(r["seq"] for r in kmsg) == list(range(len(kmsg)))  # the whole log, nothing lost
    stamps = [r["ts_us"] for r in sorted(kmsg, key=lambda r: r["seq"])]
    assert stamps == sorted(stamps) and stamps[-1] > 0
    assert run["profiled"]["stat_samples"] >= 1
    # the console stays clean: records only ever go over profiled's own channel
    assert '"type":' not in "".join(run.get("console_tail", "")) and run["warnings"] == []


def _export(results, tmp_path, fmt: str, name: str):
    """`appliance export` of the bench results in FMT to tmp_path/NAME."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results[0]))
    done = appliance("export", str(path), "--format", fmt, "-o", str(tmp_path / name))
    assert done.returncode == 0, done.stderr
    return tmp_path / name


def test_process_timeline_is_a_track_in_the_exports(results, tmp_path):
    _export(results, tmp_path, "chrome", "t.json")
    trace = json.loads((tmp_path / "t.json").read_text())
    threads = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert {"boot", "processes"} <= threads
    assert any(e["ph"] == "C" and e["name"] == "guest memory MiB" for e in trace["traceEvents"])
    assert any(e["ph"] == "B" and e["name"].startswith("/bin/forker [") for e in trace["traceEvents"])


def test_virtio_console_channel(tmp_path):
    template = tmp_path / "profvirtio.toml"
    template.write_text((ROOT / "rootfs_templates/profiled.toml").read_text()
                        .replace('channel = "serial"', 'channel = "virtio"')
                        .replace("[programs]", '[modules]\nrules = ["virtio_mmio", "virtio_console"]\n\n[programs]'))
    run = _boot(_build(template))
    log = guestlog.parse(run.guest_log)
    assert log.complete, log.problems
    assert any(p.path == "/bin/forker child 3" for p in guestlog.processes(log))


def test_a_kernel_without_process_events_says_so(tmp_path):
    template = tmp_path / "profmin.toml"
    template.write_text((ROOT / "rootfs_templates/profiled.toml").read_text()
                        .replace("[appliance]\n", '[appliance]\nkernel = "minimal"\n'))
    run = _boot(_build(template))
    log = guestlog.parse(run.guest_log)
    summary = guestlog.summary(log)
    assert log.complete and not summary["proc_events"]
    assert any("no process events" in note for note in summary["notes"])
    assert summary["kmsg_records"] > 50 and "init_start" in summary["memory"]


def test_the_tslog_tooling_draws_the_linux_process_timeline(results, tmp_path):
    _export(results, tmp_path, "tslog-user", "user.txt")
    drawn = appliance("tslog", "--user", str(tmp_path / "user.txt"), "--tsc-hz", "1e9", "--svg", str(tmp_path / "u.svg"))
    assert drawn.returncode == 0, drawn.stderr
    assert "userland:" in drawn.stdout
    assert "/bin/forker [" in (tmp_path / "u.svg").read_text()


def test_analyze_with_the_ftrace_source_times_initcalls_off_the_console(tmp_path):
    _build("profiled")
    out = tmp_path / "ft.json"
    # tsc=unstable: what a busy host does to the guest; the kernel then switches the trace
    # clock at late init, which emptied the buffer before trace_clock=global was given
    done = appliance("analyze", str(BUILD / "profiled"), "--source", "ftrace", "-n", "1", "--no-baseline",
                     "--accel", "tcg", "--append", "tsc=unstable", "-o", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    analysis = json.loads(out.read_text())["analysis"]
    assert analysis["source"] == "ftrace" and "trace_event=initcall:" in analysis["cmdline"]
    names = {c["key"] for c in analysis["initcalls"]}
    assert len(names) > 200 and "crypto_algapi_init" in names  # the Debian kernel's, from the trace buffer
    assert any(s["stack"][-1] == "crypto_algapi_init" for s in analysis["spans"])  # anchored on the timeline
    assert "no plain boots to compare with" in done.stdout  # --no-baseline: the cost is not claimed


def test_the_ftrace_source_needs_profiled(built):
    done = appliance("analyze", str(built["benchmark"]), "--source", "ftrace", "-n", "1", "--accel", "tcg")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: the ftrace source needs profiled")

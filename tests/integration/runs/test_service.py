"""Service appliances under TCG: the web template serves its file through a forwarded
port, the runner times launch -> first HTTP answer as service_ready and stops the VM, two
bench runs at once do not collide on host ports, and each way a service can fail ends
in one line, fast, with no QEMU left."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from appliance import bundle as bundles
from appliance.assemble import reinitrd
from appliance.boot import measure
from appliance.boot.qemu import BootSpec
from appliance.errors import BootError
from tests.conftest import BUILD, ROOT, appliance, qemu_children_of, scons

pytestmark = pytest.mark.boot
WEB = ROOT / "rootfs_templates" / "web.toml"
PAGE = (ROOT / "rootfs_templates" / "web" / "index.html").read_bytes()


def build(template: str) -> Path:
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD / Path(template).stem


@pytest.fixture(scope="module")
def web() -> Path:
    return build("web")


def variant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """The web template with one line changed, beside its files and lock."""
    text = WEB.read_text()
    assert old in text
    folder = tmp_path / name
    folder.mkdir()
    (folder / "web").mkdir()
    (folder / "web" / "index.html").write_bytes(PAGE)
    (folder / f"{name}.lock").write_text((ROOT / "rootfs_templates" / "web.lock").read_text())
    path = folder / f"{name}.toml"
    path.write_text(text.replace(old, new))
    return path


def test_run_times_launch_to_the_first_http_answer_and_stops_the_vm(web):
    done = appliance("run", str(web), "--accel", "tcg", "--json")
    assert done.returncode == 0, done.stderr
    phases = json.loads(done.stdout)["phases_ms"]
    # the answer came after the server started, and the VM was stopped after the answer
    assert phases["service_ready"] > phases["to_init"] > 0
    assert 0 < phases["service"] < phases["service_ready"]
    assert phases["total"] > phases["service_ready"]
    assert phases["payload"] is None  # the payload ran until the host stopped it: no phase
    assert "appliance-probe: init_net_up" in done.stderr  # the console, streamed
    assert "power-off requested by signal" in done.stderr


def fetch(port: int, within_s: float) -> bytes:
    """The page through the forward, asked again until the server answers."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=30) as answer:
                assert answer.status == 200
                return answer.read()
        except OSError:
            assert time.monotonic() < deadline, "the server never answered through the forward"
            time.sleep(0.5)


def serve_until_ctrl_c(target: Path, console: Path, fetches: int, within_s: float) -> str:
    """`run --serve`, the page fetched FETCHES times, then SIGINT; checks the clean end
    (exit 0, the guest's own power-off, no QEMU, the port closed) and returns stderr."""
    with open(console, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", str(target), "--serve", "--accel", "tcg"],
                                cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        while not any("forward tcp" in line for line in lines):
            line = proc.stderr.readline()
            assert line, f"serve ended before it was ready: {''.join(lines)}"
            lines.append(line)
        port = int(next(x for x in lines if "forward tcp" in x).split("127.0.0.1:")[1].split()[0])
        assert len(qemu_children_of(proc.pid)) == 1
        for _ in range(fetches):  # served again and again: the VM was not stopped at the first answer
            assert fetch(port, within_s) == PAGE
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = "".join(lines) + proc.stderr.read()
    assert code == 0, rest
    assert "the VM powered off" in rest
    assert "appliance-init: power-off requested by signal" in console.read_text()  # the stop channel, not a kill
    assert not qemu_children_of(proc.pid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).recv(1)
    return rest


def test_serve_keeps_the_web_server_up_until_ctrl_c(web, tmp_path):
    rest = serve_until_ctrl_c(web, tmp_path / "console.log", fetches=2, within_s=0)
    assert "appliance: ready after" in rest


def test_serve_without_a_service_announces_at_once_and_powers_off_at_ctrl_c(tmp_path):
    """[network] alone: no readiness check, the same stop channel."""
    template = variant(tmp_path, "plain", '[service]\nready = "http:80/index.html"\n', "")
    rest = serve_until_ctrl_c(build(str(template)), tmp_path / "console.log", fetches=1, within_s=180)
    assert "appliance: running" in rest


def test_two_benches_at_once_pick_different_host_ports(web, tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "appliance", "bench", str(web), "--accel", "tcg", "-n", "2",
                               "--warmup", "0", "-o", str(tmp_path / f"{i}.json")],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    ports = []
    for i in (0, 1):
        runs = json.loads((tmp_path / f"{i}.json").read_text())["runs"]
        assert all(r["ok"] and r["phases_ms"]["service_ready"] > 0 for r in runs)
        ports += [r["forwards"][0] for r in runs]
    assert len(set(ports)) == len(ports), ports  # four boots, four host ports


def fails_fast(target: Path, *words: str, timeout: float = 240) -> str:
    started = time.monotonic()
    done = appliance("run", str(target), "--accel", "tcg", "--timeout", str(timeout), timeout=timeout + 60)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert time.monotonic() - started < timeout / 2  # not by waiting for the limit
    return errors[0]


def test_a_service_that_exits_early_fails_at_once(tmp_path):
    template = variant(tmp_path, "early", 'payload = ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/srv/www"]',
                       'payload = ["/bin/busybox", "true"]')
    fails_fast(build(str(template)), "the service ended before it answered http:80/index.html",
               "payload exited with status 0")


def test_a_taken_host_port_is_one_line_and_no_qemu(tmp_path):
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        template = variant(tmp_path, "fixed", 'forward = ["tcp:0-:80"]', f'forward = ["tcp:{port}-:80"]')
        target = build(str(template))
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", str(target), "--accel", "tcg"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=120)
    finally:
        holder.close()
    assert proc.returncode != 0
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: host port {port} of forward tcp:127.0.0.1:{port}-:80 is in use: stop what holds it, "
        "or use host port 0 (a free one is picked at each boot)"]


def test_a_kernel_without_the_network_driver_stops_the_boot_in_one_line(web, tmp_path):
    target = bundles.load(web)
    initrd = tmp_path / "initrd"
    initrd.write_bytes(reinitrd.rebuild(target.initrd.read_bytes(), without=["virtio_net"]))
    started = time.monotonic()
    with pytest.raises(BootError) as caught:
        measure.boot(BootSpec(target.with_initrd(initrd), "tcg", 240))
    assert str(caught.value) == ("init stopped: no network interface eth0: is its driver (virtio_net) in the "
                                 "kernel?")
    assert time.monotonic() - started < 120
    assert not qemu_children_of(os.getpid())


def test_the_bundle_records_its_network_and_service(web):
    manifest = bundles.load(web).manifest
    assert manifest["network"]["forwards"] == ["tcp:127.0.0.1:0-:80"]
    assert manifest["network"]["guest"]["address"] == "10.0.2.15"
    assert manifest["service"]["ready"] == "http:80/index.html"
    sources = {entry["path"]: entry["source"] for entry in manifest["build"]["contents"]}
    assert sources["/etc/resolv.conf"] == "network"
    assert sources["/srv/www/index.html"] == "template web/index.html"
    assert "virtio_net.ko" in " ".join(manifest["build"]["initrd"]["modules"])


def _read_until(master: int, text: str, seen: bytearray, within_s: float) -> bool:
    """Read the pseudo-terminal MASTER into SEEN until TEXT appears, it closes, or WITHIN_S."""
    import os
    import select

    deadline = time.monotonic() + within_s
    while text.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                return text.encode() in seen
            if not chunk:
                break
            seen += chunk
    return text.encode() in seen


def test_ctrl_c_at_a_real_terminal_powers_the_guest_off(web):
    """Issue 36: QEMU shared the terminal's process group, so the terminal's SIGINT killed
    it before the clean path ("error: interrupted: QEMU stopped", exit 130). Typed at a
    real pseudo-terminal, Ctrl-C now reaches appliance alone, which powers the guest off."""
    import os
    import pty

    pid, master = pty.fork()
    if pid == 0:  # the child: a session of its own on the terminal, in its foreground group
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "appliance", "run", str(web), "--serve", "--accel", "tcg"])
    seen = bytearray()
    try:
        assert _read_until(master, "forward tcp", seen, 300), seen.decode(errors="replace")[-2000:]
        qemus = qemu_children_of(pid)
        assert len(qemus) == 1 and os.getpgid(qemus[0]) != os.getpgid(pid)  # not in the terminal's group
        os.write(master, b"\x03")  # Ctrl-C, as a person types it
        assert _read_until(master, "the VM powered off", seen, 120), seen.decode(errors="replace")[-2000:]
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")[-2000:]
    assert b"power-off requested by signal" in seen and b"QEMU stopped" not in seen

"""Appliances holding real software, built from the shipped templates and booted under
TCG: busybox's shell driven through a terminal, Debian's Python running a script, and
the libguestfs-style disk tools on a root disk. Then the ways a [packages] build fails."""

import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from appliance.assemble import apt, kernelfetch
from appliance.assemble.template import TEMPLATES
from tests.conftest import BUILD, ROOT, SCONS, appliance, qemu_children_of, scons

pytestmark = pytest.mark.boot


def build(template: str) -> Path:
    done = scons("appliance", f"TEMPLATE={template}")
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD / template


class Console:
    """`appliance run --interactive` on a pseudo-terminal, as a user would have it."""

    def __init__(self, bundle: Path) -> None:
        self.master, self.slave = pty.openpty()
        self.settings = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", str(bundle), "--interactive",
                                      "--accel", "tcg", "--timeout", "300"],
                                     stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=ROOT)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"{text!r} never came; the terminal showed:\n{self.seen.decode(errors='replace')}"
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                self.seen += os.read(self.master, 65536)

    def prompt_after(self, marker: bytes, timeout: float = 60) -> bool:
        """Whether the shell's prompt came after MARKER (reading for up to TIMEOUT s)."""
        deadline = time.monotonic() + timeout
        while b"/ # " not in self.seen.partition(marker)[2] and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                self.seen += os.read(self.master, 65536)
        return b"/ # " in self.seen.partition(marker)[2]

    def read(self) -> None:
        """What the terminal shows now, appended to what was seen."""
        while select.select([self.master], [], [], 0)[0]:
            self.seen += os.read(self.master, 65536)

    def send(self, keys: bytes) -> None:
        self.seen = b""
        os.write(self.master, keys)

    def close(self) -> int:
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a failed expect: end the session, keep the first error
            self.proc.kill()
            code = self.proc.wait()
        restored = termios.tcgetattr(self.slave) == self.settings
        os.close(self.master)
        os.close(self.slave)
        assert restored, "the terminal was left in raw mode"
        return code


def test_shell_template_runs_commands_typed_on_the_console():
    console = Console(build("shell"))
    try:
        console.expect(b"/ # ")
        console.send(b"echo $((6 * 7))-from-busybox; ls /bin\r")
        console.expect(b"42-from-busybox")  # only the output has 42 (the echo has $((6 * 7)))
        assert console.prompt_after(b"42-from-busybox"), console.seen
        assert b"busybox" in console.seen.partition(b"42-from-busybox")[2]  # ls /bin
        console.send(b"sleep 300\r")
        console.expect(b"sleep 300")  # the guest echoed it: the shell has the line
        # Ctrl-C reaches the guest's shell, not us. Sent until the prompt is back, as one
        # Ctrl-C may land before sleep is in the foreground; within 90 s either way, so
        # only an interrupted sleep (300 s) lets the shell answer below.
        deadline = time.monotonic() + 90
        while not console.prompt_after(b"sleep 300", timeout=0):
            assert time.monotonic() < deadline, console.seen
            time.sleep(2)  # let sleep start first
            os.write(console.master, b"\x03")
            console.read()
        console.send(b"echo still-here\r")
        console.expect(b"still-here", timeout=60)
        console.send(b"exit\r")
        console.expect(b"appliance-init: shell exited")
        console.expect(b"session ended (guest powered off); terminal restored")
    finally:
        code = console.close()
    assert code == 0


def test_interrupting_an_interactive_session_restores_the_terminal():
    console = Console(build("shell"))
    try:
        console.expect(b"/ # ")
        assert qemu_children_of(console.proc.pid)
        console.proc.send_signal(signal.SIGINT)
        console.expect(b"error: interrupted")
    finally:
        code = console.close()
    assert code == 130
    assert not qemu_children_of(console.proc.pid)


def test_python_template_runs_its_script_and_probes_the_host():
    bundle = build("python")
    expected = hashlib.sha256(b"".join(f"appliance {i}\n".encode() for i in range(2000))).hexdigest()
    done = appliance("run", str(bundle), "--accel", "tcg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"checksum {expected}" in done.stdout
    assert "appliance-init: payload exited with status 0" in done.stdout
    assert "payload probe work_done: " in done.stdout  # the script's own probe, in run's table too
    out = BUILD / "python-bench.json"
    done = appliance("bench", str(bundle), "-n", "1", "--warmup", "0", "--accel", "tcg", "-o", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    events = {e["name"]: e for e in json.loads(out.read_text())["runs"][0]["events"]}
    # the script's own /dev/port write, timestamped by the host between payload start and end
    assert events["work_done"]["source"] == "trace"
    assert events["payload_start"]["t_ms"] < events["work_done"]["t_ms"] < events["payload_end"]["t_ms"]
    info = json.loads(appliance("inspect", str(bundle), "--json").stdout)
    sources = {s["source"].split("=")[0]: s for s in info["sources"]}
    assert {"debian python3.11-minimal", "debian libc6", "template python/payload.py", "init"} <= set(sources)
    assert not any(c["path"].startswith("/usr/share/doc/") for c in info["contents"])  # excluded by default


def test_tools_template_makes_and_checks_a_filesystem_from_its_root_disk():
    bundle = build("tools")
    done = appliance("run", str(bundle), "--accel", "tcg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tools: label appliance-test" in done.stdout
    assert "tools: e2fsck appliance-test: 11/4096 files" in done.stdout
    assert "appliance-probe: work_done" in done.stdout
    info = json.loads(appliance("inspect", str(bundle), "--json").stdout)
    where = {c["path"]: c for c in info["contents"]}
    assert where["/sbin/mke2fs"]["in"] == "rootfs" and where["/sbin/mke2fs"]["source"].startswith("debian e2fsprogs=")
    assert where["/init"]["in"] == "initrd"
    text = appliance("inspect", str(bundle)).stdout
    assert "debian util-linux=" in text and "rootfs" in text


BAD = [
    ("[packages]\nhost = ['no-such-program']\n", None, "host program 'no-such-program' not found on PATH"),
    ("[packages]\ndebian = ['no-such-package-here']\n", None, "Unable to locate package no-such-package-here"),
    ("[packages]\ndebian = ['busybox', 'busybox-static']\n", None, "Conflicts: busybox"),
    ("[packages]\ndebian = ['busybox-static', 'zstd']\n", "lock", "was made for [packages] debian = ['busybox-static']"),
    ("[packages]\ndebian = ['busybox-static']\n", "digest", "the lock file says 0000000000000000"),
    ("[packages]\ndebian = ['busybox-static']\n[[files]]\nsrc = 'bad.toml'\ndst = 'bin/busybox'\n", "lock",
     "/bin/busybox comes from template bad.toml and from debian busybox-static="),
    ("[packages]\ndebian = ['busybox-static']\n[init]\npayload = ['/bin/sh']\n", "lock",
     "[init] payload '/bin/sh' is not an executable file of the appliance"),
]


@pytest.mark.parametrize("text, lock, message", BAD, ids=["program", "package", "conflict", "stale-lock", "digest",
                                                          "collision", "payload"])
def test_bad_packages_fail_in_one_line_and_leave_nothing(tmp_path, text, lock, message):
    (tmp_path / "bad.toml").write_text(text)
    if lock:
        body = (TEMPLATES / "shell.lock").read_text()
        if lock == "digest":
            sha = body.split('sha256 = "')[1].split('"')[0]
            body = body.replace(sha, "0" * 64)
        (tmp_path / "bad.lock").write_text(body)
    out = tmp_path / "out"
    done = subprocess.run([SCONS, "-Q", f"BUILD_DIR={out}", "appliance",
                           f"TEMPLATE={tmp_path / 'bad.toml'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: template bad") and message in errors[0], done.stderr
    assert not (out / "bad" / "initrd").exists() and not (out / "bad" / "bundle.json").exists()
    cache = apt.deb_cache(kernelfetch.cache_dir())
    assert not list(cache.glob(".download-*")) and not list(cache.glob("00000000*"))
    if lock is None and "Unable" in message:
        assert not (tmp_path / "bad.lock").exists()  # no lock written for what apt could not resolve
    shutil.rmtree(out, ignore_errors=True)


def test_lock_verb_writes_and_refreshes_a_lock(tmp_path):
    (tmp_path / "bb.toml").write_text("[packages]\ndebian = ['busybox-static']\n")
    done = appliance("lock", str(tmp_path / "bb.toml"), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report["packages"]) == ["busybox-static"] and report["changed"][0].startswith("busybox-static new -> ")
    assert (tmp_path / "bb.lock").read_text() == (TEMPLATES / "shell.lock").read_text().replace("shell", "bb")
    again = json.loads(appliance("lock", str(tmp_path / "bb.toml"), "--json").stdout)
    assert again["changed"] == []
    (tmp_path / "none.toml").write_text("[init]\nmounts = ['proc']\n")
    done = appliance("lock", str(tmp_path / "none.toml"))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: template none has no [packages] debian: there is nothing to lock"


def test_the_sbom_lists_every_package_inspect_lists_and_validates_in_both_formats(tmp_path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    bundle = build("python")
    info = json.loads(appliance("inspect", str(bundle), "--json").stdout)
    debian = {s["source"].removeprefix("debian ").split("=")[0] for s in info["sources"] if s["source"].startswith("debian ")}
    spdx, cdx = tmp_path / "sbom.spdx.json", tmp_path / "sbom.cdx.json"
    for fmt, path in (("spdx", spdx), ("cyclonedx", cdx)):
        done = appliance("sbom", str(bundle), "--format", fmt, "-o", str(path))
        assert done.returncode == 0, done.stderr
    assert validate_full_spdx_document(parse_file(str(spdx))) == []
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(cdx.read_text()) is None
    packages = {p["name"]: p for p in json.loads(spdx.read_text())["packages"]}
    assert debian <= set(packages) and len(debian) > 5
    python = packages["python3.11-minimal"]
    assert python["externalRefs"][0]["referenceLocator"].startswith("pkg:deb/debian/python3.11-minimal@")
    # licenses read from the packages' copyright files at build time (the docs are excluded)
    assert (packages["zlib1g"]["licenseDeclared"], packages["libexpat1"]["licenseDeclared"]) == ("Zlib", "MIT")
    # libc6's copyright file is prose, not Debian's machine-readable format: no guess
    assert packages["libc6"]["licenseDeclared"] == "NOASSERTION"
    # NTIA's minimum elements: every component has a supplier; a locked package whose files
    # were all left out (gcc-12-base: documentation only) is listed too (issue 36)
    assert all(p.get("supplier") for p in packages.values()), [n for n, p in packages.items() if not p.get("supplier")]
    assert "gcc-12-base" in packages
    components = {c["name"]: c for c in json.loads(cdx.read_text())["components"]}
    assert debian <= set(components)
    assert components["template python/payload.py"]["components"][0]["name"] == "opt/payload.py"
    # the same bundle gives the same bytes
    again = tmp_path / "again.json"
    appliance("sbom", str(bundle), "--format", "spdx", "-o", str(again))
    assert again.read_bytes() == spdx.read_bytes()


def test_python_on_an_erofs_root_keeps_its_packages_out_of_the_initramfs_and_builds_the_same_bytes(tmp_path):
    bundle = build("python-erofs")
    done = appliance("run", str(bundle), "--accel", "tcg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checksum" in done.stdout and "appliance-init: payload exited with status 0" in done.stdout
    info = json.loads(appliance("inspect", str(bundle), "--json").stdout)
    in_initrd = {c["source"].split("=")[0] for c in info["contents"] if c["in"] == "initrd"}
    on_disk = {c["source"].split("=")[0] for c in info["contents"] if c["in"] != "initrd"}
    assert not any(s.startswith("debian ") for s in in_initrd) and "debian python3.11-minimal" in on_disk
    assert info["initrd"]["uncompressed_bytes"] < 1 << 20  # the init and the disk's modules, not 35 MB of python
    # a second, clean build (another build folder) gives the same initrd and EROFS image
    again = tmp_path / "again"
    done = subprocess.run([SCONS, "-Q", f"BUILD_DIR={again}", "appliance",
                           "TEMPLATE=python-erofs"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("initrd", "rootfs.img"):
        assert (again / "python-erofs" / name).read_bytes() == (bundle / name).read_bytes(), name


def test_python_on_an_erofs_root_on_pmem_mounts_it_with_dax():
    bundle = build("python-erofs-pmem")
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["disks"] == [{"file": "rootfs.img", "kind": "pmem"}]
    done = appliance("run", str(bundle), "--accel", "tcg", "--append", "loglevel=7")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "appliance-init: payload exited with status 0" in done.stdout
    # the init mounts the root with -o dax: EROFS says so, and would refuse it on a device without DAX
    assert "DAX enabled" in done.stdout, done.stdout[-3000:]


def test_tools_on_an_erofs_root_write_through_a_tmpfs_overlay():
    bundle = build("tools-erofs")
    done = appliance("run", str(bundle), "--accel", "tcg")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tools: label appliance-test" in done.stdout and "tools: root is overlay" in done.stdout


def test_clean_builds_give_the_same_bytes_and_a_warm_build_compresses_only_the_piece_that_changed(tmp_path):
    """The python template, copied, built into fresh folders with caches of their own
    (the kernel and the .debs shared: they are inputs; no pieces, no programs)."""
    folder = tmp_path / "template"
    (folder / "python").mkdir(parents=True)
    for name in ("python.toml", "python.lock", "python/payload.py"):
        shutil.copyfile(TEMPLATES / name, folder / name)

    def cache(name: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        for part in ("kernels", "debs"):
            (kernelfetch.cache_dir() / part).mkdir(parents=True, exist_ok=True)
            (path / part).symlink_to(kernelfetch.cache_dir() / part)
        return path

    def build_into(out: str, cache_dir: Path) -> tuple[bytes, dict[str, str]]:
        done = subprocess.run([SCONS, "-Q", f"BUILD_DIR={tmp_path / out}",
                               "appliance", f"TEMPLATE={folder / 'python.toml'}"], cwd=ROOT, capture_output=True,
                              text=True, timeout=900, env={**os.environ, "APPLIANCE_CACHE": str(cache_dir)})
        assert done.returncode == 0, done.stdout + done.stderr
        # "  piece debian libc6=2.36-9+deb12u14: 3606482 bytes (...), cached" -> {name: cached or made}
        log = {line.split(": ", 1)[0].removeprefix("  piece "): line.rsplit(", ", 1)[1]
               for line in done.stdout.splitlines() if line.startswith("  piece ")}
        return (tmp_path / out / "python" / "initrd").read_bytes(), log

    first, log = build_into("a", cache("cache-a"))
    assert len(log) > 10 and set(log.values()) == {"made"} and any(name.startswith("debian python3.11-minimal=") for name in log)
    second_cache = cache("cache-b")
    second, _ = build_into("b", second_cache)
    assert second == first  # two clean builds, the same bytes
    warm, log = build_into("c", second_cache)
    assert warm == first and set(log.values()) == {"cached"}
    (folder / "python" / "payload.py").write_text((folder / "python" / "payload.py").read_text() + "\n# changed\n")
    changed, log = build_into("c", second_cache)
    assert [name for name, how in log.items() if how == "made"] == ["appliance"]  # the payload's piece alone
    assert changed != first and len(log) == len([n for n in log if n.startswith("debian ")]) + 1


def test_inspect_cost_prices_every_package_of_python_and_its_json_adds_up(tmp_path):
    bundle = build("python")
    out = tmp_path / "cost.json"
    done = appliance("inspect", str(bundle), "--cost", "-n", "1", "--accel", "tcg", "--json", "-o", str(out))
    assert done.returncode == 0, done.stderr
    table = json.loads(done.stdout)["cost"]
    rows = {r["source"]: r for r in table["sources"]}
    info = json.loads(appliance("inspect", str(bundle), "--json").stdout)
    # every source of the build is priced, with its bytes as built
    assert {s["source"] for s in info["sources"]} <= set(rows)
    libc = next(r for name, r in rows.items() if name.startswith("debian libc6="))
    assert libc["initrd_bytes"] > 10 << 20 and libc["movable"] and not rows["init"]["movable"]
    assert table["total_ms"] == pytest.approx(sum(r["total_ms"] for r in table["sources"]) + table["init_ms"], abs=0.1)
    # the unpack is shared by bytes: the biggest package carries the biggest share (when the boots show any)
    shares = sorted((r for r in table["sources"] if r["movable"]), key=lambda r: -r["unpack_ms"])
    assert table["unpack_ms"] == 0 or shares[0]["source"].startswith("debian libc6=")
    assert any("populate_rootfs" in note for note in table["notes"])  # the debug boots timed the unpack itself
    assert table["measured_ms"] > 0  # the bundle's payload_start over its init alone, measured beside it
    # the results document holds the plain boots and the table; the report draws it
    assert json.loads(out.read_text())["kind"] == "cost"
    html = tmp_path / "cost.html"
    assert appliance("report", str(out), "-o", str(html)).returncode == 0
    assert "what each part costs at boot" in html.read_text() and "debian libc6=" in html.read_text()

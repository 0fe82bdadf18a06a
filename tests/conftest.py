import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SCONS = str(Path(sys.executable).with_name("scons"))
# The session's build outputs: never the checkout's build/, which is the user's. Only a
# path at import (importing a test module creates nothing); SCons makes it when building.
BUILD = Path(tempfile.gettempdir()) / f"appliance-tests-build-{os.getpid()}"
# Every program a test starts gets its own TMPDIR, removed with the session: what a
# killed runner or a failed `run` (whose console log is kept on purpose) leaves is gone.
SESSION_TMP = Path(tempfile.gettempdir()) / f"appliance-tests-tmp-{os.getpid()}"


def scons(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """scons in the checkout, building into BUILD; in a copy of the tree (CWD), into
    that copy's own build/."""
    where = [f"BUILD_DIR={BUILD}"] if cwd == ROOT else []
    return subprocess.run([SCONS, "-Q", *where, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def pytest_collection_modifyitems(config, items):
    """Every integration test boots or builds for real: mark it `boot`, so that
    `pytest -m "not boot"` is the fast inner loop (the unit tests, about 25 s)."""
    integration = ROOT / "tests" / "integration"
    for item in items:
        if integration in Path(item.fspath).parents:
            item.add_marker(pytest.mark.boot)


def pytest_configure(config):
    SESSION_TMP.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(SESSION_TMP)  # for child processes; this one's tempdir is already fixed
    # what the tests record goes to the session's own store, never the user's
    os.environ["APPLIANCE_DB"] = f"sqlite:///{SESSION_TMP / 'results.db'}"
    # A suite started in the background by a non-interactive shell (`.ci/run &`) inherits
    # SIGINT ignored, and so would every `appliance` the tests start: the tests that press
    # Ctrl-C would see it ignored. A handler (unlike an ignore) is not inherited by exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(BUILD, ignore_errors=True)
    shutil.rmtree(SESSION_TMP, ignore_errors=True)


def appliance(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`appliance ARGS` in the checkout, with ENV added to this environment."""
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# What every run of the suite reuses, by content that does not change from run to run:
# the Debian kernels, the instruction clock's plugin and QEMU's header, guest programs.
SHARED_CACHE_PARTS = ("kernels", "plugin", "qemu-plugin-header", "programs")


def scratch_cache(folder: Path) -> dict[str, str]:
    """The environment of a build from an image a test makes anew on each run (mmdebstrap
    stamps its files with the time): that image's root disk, pieces and kernel land in
    FOLDER, removed with the test, not in the user's cache, which they would grow by a
    gigabyte a run. The parts every run reuses stay shared (SHARED_CACHE_PARTS)."""
    from appliance.assemble import kernelfetch

    folder.mkdir(parents=True, exist_ok=True)
    for part in SHARED_CACHE_PARTS:
        shared = kernelfetch.cache_dir() / part
        shared.mkdir(parents=True, exist_ok=True)
        (folder / part).symlink_to(shared)
    return {"APPLIANCE_CACHE": str(folder)}


@pytest.fixture(scope="session")
def built():
    """Build the benchmark and minimal bundles once; return {template: bundle dir}."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run ./setup")
    out = {}
    for template in ("benchmark", "minimal"):
        done = scons("appliance", f"TEMPLATE={template}")
        assert done.returncode == 0, done.stdout + done.stderr
        out[template] = BUILD / template
    return out


@pytest.fixture(scope="session")
def minimal_kernel_bundle():
    """benchmark-minimal: the benchmark appliance on the minimal kernel (built once, cached)."""
    done = scons("appliance", "TEMPLATE=benchmark-minimal")
    assert done.returncode == 0, done.stdout + done.stderr
    return BUILD / "benchmark-minimal"


@pytest.fixture
def copy_bundle(built, tmp_path):
    """A private copy of a bundle that a test may edit (its cmdline, its files)."""
    def make(template: str) -> Path:
        target = tmp_path / template
        shutil.copytree(built[template], target)
        return target
    return make


def qemu_children_of(pid: int) -> list[int]:
    """PID's QEMU children that boot a guest: not `qemu-system-x86_64 --version` (the host
    facts ask it before the first boot), which a test must not take for a boot."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and "qemu-system" in stat and (b"-kernel" in argv or b"-cdrom" in argv):
                found.append(int(entry))
    return found


def edit_manifest(folder: Path, change) -> None:
    """Change a bundle's manifest the way a rebuild would (sealed again): CHANGE(manifest)
    edits the dict in place. An edit by hand is refused by `bundle.load`."""
    import json

    from appliance import bundle

    manifest = json.loads((folder / "bundle.json").read_text())
    change(manifest)
    bundle.write(folder, manifest)


def manifest_of(**keys):
    """A whole bundle.json of the current format for a bundle made in a test (a unit test
    that builds no bundle), with KEYS replacing the defaults."""
    from appliance import bundle

    base = {"format": bundle.FORMAT, "name": "test", "files": {"kernel": {}, "initrd": {}}, "disks": [],
            "cmdline": "console=ttyS0", "cmdline_base": "panic=-1", "machine": "microvm", "arch": "x86_64",
            "memory_mib": 256, "cpus": 1, "probes": [],
            "build": {"kernel": {"release": "6.1.0-test", "source": "debian.lock"},
                      "initrd": {"programs": {"init": 1}, "modules": {}}, "contents": []},
            "device_tree": None, "virtio_transports": [], "kernel_acpi": True, "network": None, "service": None,
            "profiled": None}
    return {**base, **keys}

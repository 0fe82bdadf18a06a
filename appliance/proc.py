"""The one place that starts external programs.

`run()` runs a program to completion, `spawn()` starts one that runs beside us (QEMU,
a console relay's QEMU, a dask worker). Both take argv lists only, log the command at
debug level and raise typed errors: ToolMissing naming the package that provides the
program, ToolFailed with argv, exit code and stderr, ToolTimedOut for a deadline.
A spawned process dies with us (`setpriv --pdeathsig KILL`, which then execs the
program, so the PID is the program's): no Python runs between fork and exec (no
preexec_fn), because Python code in a forked child can deadlock on a lock that another
thread of ours held at the fork. No other module imports subprocess
(tests/unit/test_proc.py checks it).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import subprocess
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from appliance.errors import ToolFailed, ToolMissing, ToolTimedOut

log = logging.getLogger(__name__)

# Which Debian package provides each external program we use.
PACKAGES: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "diet": "dietlibc-dev",
    "gcc": "gcc",
    "strip": "binutils",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "dpkg-scanpackages": "dpkg-dev",
    "dpkg-query": "dpkg",
    "cpio": "cpio",
    "mke2fs": "e2fsprogs",
    "mkfs.erofs": "erofs-utils",
    "objdump": "binutils",
    "umoci": "umoci",
    "setpriv": "util-linux",
    "depmod": "kmod",
    "patch": "patch",
    "qemu-img": "qemu-utils",
    "objcopy": "binutils",
    "make": "make",
    "bison": "bison",
    "flex": "flex",
    "bc": "bc",
    "tar": "tar",
    "cp": "coreutils",
    "grep": "grep",
    "git": "git",
    "perf": "linux-perf",
    "dtc": "device-tree-compiler",
    "openssl": "openssl",
}

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
# `setpriv` (util-linux) with these arguments sets PR_SET_PDEATHSIG, then execs the program.
DIE_WITH_PARENT = ("--pdeathsig", "KILL", "--")


def find_tool(name: str) -> str:
    """Return the path of program NAME, or raise ToolMissing naming its package."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        raise ToolMissing(f"{name} not found: install it with `apt-get install {package}`")
    return path


def _resolved(argv: list[str]) -> list[str]:
    """argv with its program found on PATH (ToolMissing if it is not there)."""
    exe = find_tool(argv[0]) if os.sep not in argv[0] else argv[0]
    return [exe, *argv[1:]]


def _complete(argv: list[str], cwd: Path | None, env: Mapping[str, str] | None, timeout: float | None, *,
              text: bool, capture: bool, group: bool = False) -> subprocess.CompletedProcess[Any]:
    """argv run to completion, output captured unless CAPTURE is false (then it goes to ours).
    With GROUP it runs in a process group of its own, and a timeout or an interrupt ends
    the whole group: a user's build command and whatever it started (subprocess.run kills
    only the direct child, and a `sleep 1000` it started ran on)."""
    full = _resolved(argv)
    log.debug("run: %s", " ".join(full))
    if not group:
        try:
            return subprocess.run(full, cwd=cwd, env=env, timeout=timeout, capture_output=capture, text=text,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the child
            raise ToolTimedOut(full, timeout or 0.0) from exc
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen(full, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe, text=text,
                          process_group=0) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _end_group(child)
            raise ToolTimedOut(full, timeout or 0.0) from None
        except BaseException:
            _end_group(child)
            raise
        _end_group(child)  # what the command left running behind it
    return subprocess.CompletedProcess(full, child.returncode, out, err)


def _end_group(child: subprocess.Popen[Any]) -> None:
    """SIGKILL every process left in CHILD's group, and reap CHILD."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
    group: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run argv to completion; return its output or raise ToolFailed/ToolMissing/
    ToolTimedOut (a non-zero exit is returned, not raised, when CHECK is false). Without
    CAPTURE the program writes to our own stdout and stderr (a build the user watches).
    With GROUP whatever it starts ends with it (a timeout included)."""
    done = _complete(argv, cwd, env, timeout, text=True, capture=capture, group=group)
    if check and done.returncode != 0:
        raise ToolFailed(done.args, done.returncode, done.stderr or done.stdout or "")
    return done


def run_bytes(argv: list[str], *, timeout: float | None = None) -> bytes:
    """Run argv to completion and return its standard output as bytes (an archive
    streamed by a tool); failures as in run()."""
    done = _complete(argv, None, None, timeout, text=False, capture=True)
    if done.returncode != 0:
        raise ToolFailed(done.args, done.returncode, done.stderr.decode("utf-8", "replace"))
    return bytes(done.stdout)


class Child:
    """A program started by spawn(): its PID and pipes, waiting for it, ending it."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: list[str]) -> None:
        self._popen = popen
        self.argv = argv
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def stdout(self) -> IO[bytes] | None:
        return self._popen.stdout

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code, or None if it still runs after TIMEOUT seconds."""
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def reap(self) -> tuple[int, resource.struct_rusage]:
        """Wait for its exit (known to have happened or imminent) with wait4(): the exit
        code and its resource usage (max RSS, CPU time), which Popen.wait does not give."""
        _, status, usage = os.wait4(self.pid, 0)
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        return self._popen.returncode, usage

    def signal(self, signum: int) -> None:
        if self._popen.returncode is None:
            self._popen.send_signal(signum)

    def end(self, grace_s: float = 2.0) -> None:
        """End it if it still runs: SIGTERM, then SIGKILL after GRACE_S seconds; reaped."""
        if self._popen.returncode is not None:
            return
        self.signal(signal.SIGTERM)
        if self.wait(grace_s) is None:
            self._popen.kill()
            self._popen.wait()


# Every Child not yet collected: what end_all() ends (a cancelled fleet block's QEMU).
_LIVE: weakref.WeakSet[Child] = weakref.WeakSet()


def end_all(grace_s: float = 2.0) -> int:
    """End every program this process spawned that still runs; how many there were."""
    running = [child for child in list(_LIVE) if child.poll() is None]
    for child in running:
        child.end(grace_s)
    return len(running)


def spawn(argv: list[str], *, stdin: int | IO[Any] | None = DEVNULL, stdout: int | IO[Any] | None = None,
          stderr: int | IO[Any] | None = None, cwd: Path | None = None, env: Mapping[str, str] | None = None,
          die_with_parent: bool = True, own_group: bool = False) -> Child:
    """Start argv beside us and return it. With DIE_WITH_PARENT (the default) it gets
    SIGKILL when this process dies, even by SIGKILL, so no program of ours outlives us.
    With OWN_GROUP it gets a process group of its own, so a Ctrl-C at the terminal
    reaches us alone and we end it our way (QEMU: a guest's clean power-off)."""
    full = _resolved(argv)
    if die_with_parent:
        full = [find_tool("setpriv"), *DIE_WITH_PARENT, *full]
    log.debug("spawn: %s", " ".join(full))
    popen = subprocess.Popen(full, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=env, close_fds=True,
                             process_group=0 if own_group else None)
    return Child(popen, full)

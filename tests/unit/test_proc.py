"""Every process the package starts goes through appliance/proc.py (run, spawn): the
argv is logged under --debug, a missing program names its package, a failure is a
typed error, and a spawned program dies with us. This checks the source of every
module for any other way to start a process, imports inside functions included."""

import ast
from pathlib import Path

import pytest

from tests.unit.test_layers import MODULES

GATEWAY = "appliance.proc"
FORBIDDEN_MODULES = {"subprocess", "pty", "multiprocessing", "pexpect"}
# os functions that start or replace a process
FORBIDDEN_OS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "execvp",
                "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe",
                "spawnl", "spawnle", "spawnlp", "spawnlpe")


def violations(source: str) -> list[str]:
    """The lines of SOURCE that start a process without the gateway."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in FORBIDDEN_OS]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
              and node.attr in FORBIDDEN_OS):
            found.append(f"{node.lineno}: os.{node.attr}")
    return found


def test_only_the_gateway_starts_processes():
    found = {m: v for m, path in MODULES.items() if m != GATEWAY and (v := violations(path.read_text()))}
    assert found == {}, "start processes through appliance.proc (run, spawn), not directly"


def test_the_gateway_itself_is_where_subprocess_is_used():
    assert violations(MODULES[GATEWAY].read_text())  # if this fails, the check above checks nothing


@pytest.mark.parametrize("planted", [
    "import subprocess\nsubprocess.run(['ls'])\n",
    "def f():\n    from subprocess import Popen\n    Popen(['ls'])\n",
    "import os\nos.system('ls')\n",
    "import os\ndef f():\n    os.execvp('ls', ['ls'])\n",
    "from os import popen\n",
    "import pty\n",
])
def test_a_planted_violation_is_caught(planted):
    assert violations(planted)


def test_ordinary_os_use_is_not_a_violation():
    assert violations("import os\nos.kill(1, 0)\nos.pidfd_open(1)\nos.wait4(1, 0)\n") == []


def test_a_timed_out_group_run_ends_what_the_command_started(tmp_path):
    """Issue 36: bisect's --build-timeout killed only the direct child; a `sleep 1000` it
    started ran on."""
    import time

    import pytest

    from appliance import proc
    from appliance.errors import ToolTimedOut

    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(ToolTimedOut):
        proc.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=1, group=True)
    assert time.monotonic() - started < 30
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # killed, waiting for init to reap it
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the command's child {grandchild} still runs")

"""Advisory locks between processes (fsutil.locked): a second build waits and says for
whom, or is refused in one line; a dead holder leaves no lock behind."""

import subprocess
import sys
import threading
import time

import pytest

from appliance.fsutil import Busy, locked

# holds the lock until a line arrives on its stdin (or it is killed): no race with a slow host
HOLD = "import sys; from pathlib import Path; from appliance.fsutil import locked\n" \
       "with locked(Path(sys.argv[1]), 'test'):\n    print('held', flush=True); sys.stdin.readline()\n"


def holder(path):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_held_lock_is_refused_naming_its_holder_or_waited_for(tmp_path, capsys):
    path = tmp_path / ".lock"
    child = holder(path)
    try:
        with pytest.raises(Busy, match=rf"the other build \(pid {child.pid}\)"):
            with locked(path, "the other build", wait=False):
                pass
        released = []

        def let_go():
            released.append(time.monotonic())
            child.stdin.write("go\n")
            child.stdin.flush()

        release = threading.Timer(0.5, let_go)
        release.start()
        with locked(path, "the other build"):
            acquired = time.monotonic()
        release.join()
        assert acquired >= released[0]  # it had the lock only once the holder let go
        assert f"waiting: the other build (pid {child.pid})" in capsys.readouterr().err
    finally:
        child.kill()
        child.wait(timeout=10)


def test_a_killed_holder_leaves_no_lock(tmp_path):
    path = tmp_path / ".lock"
    child = holder(path)
    child.kill()
    child.wait(timeout=10)
    with locked(path, "x", wait=False):  # the kernel dropped it with the process
        pass


def test_shared_holders_share_and_keep_an_exclusive_one_out(tmp_path):
    path = tmp_path / ".lock"
    with locked(path, "a build", shared=True), locked(path, "another build", shared=True):
        with pytest.raises(Busy):
            with locked(path, "cleaning", wait=False):
                pass

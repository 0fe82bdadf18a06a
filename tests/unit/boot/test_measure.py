"""A measured boot's verdicts from its console and QEMU's exit."""

from pathlib import Path

import pytest

from appliance.boot.measure import check_console
from appliance.errors import BootError


def test_console_checks():
    assert check_console("appliance-init: payload exited with status 0\n") == 0
    assert check_console("no payload here") is None
    with pytest.raises(BootError, match="status 3"):
        check_console("appliance-init: payload exited with status 3\n")
    with pytest.raises(BootError, match="kernel panic: Kernel panic - not syncing: Attempted to kill init"):
        check_console("[ 1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n")
    with pytest.raises(BootError, match="cannot exec payload"):
        check_console("appliance-init: cannot exec payload /bin/x No such file\n")


def test_qemu_killed_from_outside_is_said_so():
    from appliance.boot import measure, qemu

    raw = measure.RawBoot(qemu.Exit(-9, 0, 1, 0, ""), "booting\n", "", [], ["qemu-system-x86_64"], Path("p"))
    assert str(measure._failed_start(raw)) == "QEMU was killed by SIGKILL from outside the runner during the boot"
    failed = measure.RawBoot(qemu.Exit(1, 0, 1, 0, "qemu: bad option\n"), "", "", [], ["qemu"], Path("p"))
    assert str(measure._failed_start(failed)).startswith("QEMU exited with status 1: qemu: bad option")


def test_a_shell_appliance_is_refused_by_the_measuring_verbs(tmp_path):
    from appliance.boot import measure
    from appliance.bundle import Bundle
    from appliance.errors import BootError
    from tests.conftest import manifest_of

    manifest = manifest_of()
    manifest["build"] = {**manifest["build"], "template": {"shell": ["/bin/busybox", "sh"]}}
    with pytest.raises(BootError, match="runs an interactive shell .* --interactive"):
        measure.refuse_shell(Bundle(tmp_path, manifest))

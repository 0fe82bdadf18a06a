"""The host's facts recorded with a run set."""

from pathlib import Path


def test_the_host_facts_of_an_aarch64_run_name_its_qemu():
    from appliance.boot import hostfacts
    from appliance.machines import Arch

    facts = hostfacts.collect(Arch.AARCH64)
    assert Path(facts["qemu_path"]).name == "qemu-system-aarch64"
    assert facts["qemu_version"].startswith("QEMU emulator version")
    assert Path(hostfacts.collect(Arch.X86_64)["qemu_path"]).name == "qemu-system-x86_64"

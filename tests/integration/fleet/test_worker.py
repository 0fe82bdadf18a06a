"""What `appliance worker` finds it can boot on this host before it joins (it starts QEMU: the KVM probe)."""

from appliance.fleet import worker
from appliance.machines import Accel, Arch


def test_the_host_check_offers_the_architectures_it_has_a_qemu_for(tmp_path):
    checked = worker.check_host()
    assert Arch.X86_64 in checked.arches  # setup installs qemu-system-x86
    if checked.accel.accel is Accel.TCG:  # this host, and any without a working KVM, says so once
        assert any(note.startswith("boots use TCG here") for note in checked.notes)

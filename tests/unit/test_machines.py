"""QEMU machines as data: each one's architecture, transport and words, and the checks
on a command line and on a bundle's virtio transports."""

from appliance.machines import CMDLINE_MAX, SHAPES, Arch, Machine, cmdline_problem, machines_of, shape, transport_problem


def test_every_machine_has_a_shape_of_its_architecture_with_a_known_transport():
    assert set(SHAPES) == set(Machine)
    assert machines_of(Arch.AARCH64) == [Machine.VIRT]
    assert Machine.MICROVM in machines_of(Arch.X86_64) and Machine.VIRT not in machines_of(Arch.X86_64)
    for machine in Machine:
        assert shape(machine).virtio_transport in ("virtio_mmio", "virtio_pci")
    assert "pci=off" in shape(Machine.MICROVM).cmdline and shape(Machine.VIRT).cmdline == "console=ttyAMA0"
    assert (Arch.AARCH64.debian, Arch.AARCH64.qemu, Arch.X86_64.cross_prefix) == ("arm64", "qemu-system-aarch64", "")


def test_a_bundle_without_its_machines_transport_is_told_how_to_build_one():
    assert transport_problem(("virtio_mmio",), True, Machine.MICROVM) is None
    assert transport_problem(("virtio_mmio",), False, Machine.Q35_QBOOT) is None  # no virtio device: nothing needed
    why = transport_problem(("virtio_mmio",), True, Machine.Q35_QBOOT)
    assert why is not None and "virtio_pci on q35-qboot" in why and "MACHINE=q35-qboot" in why


def test_a_command_line_the_kernel_cannot_take_is_named():
    assert cmdline_problem("console=ttyS0 quiet") is None
    assert "control character" in cmdline_problem("quiet\ninit=/bin/sh")
    assert cmdline_problem("x" * CMDLINE_MAX) is None
    assert f"at most {CMDLINE_MAX}" in cmdline_problem("x" * (CMDLINE_MAX + 1))

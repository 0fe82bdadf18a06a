"""Which modules an appliance ships beyond its rules: [network]'s driver and the virtio
transport of the machine it is built for (assemble/drivers.py, testable without a build)."""

import pytest

from appliance.assemble import drivers, kmod
from appliance.assemble.template import parse_template
from tests.conftest import ROOT

DEP = """kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
"""


def index(builtin: str = "") -> kmod.ModuleIndex:
    return kmod.parse_index("6.1.0-test", DEP, "", "", builtin)


def template(text: str):
    return parse_template("t", text, ROOT)


def test_the_machines_transport_joins_a_virtio_closure():
    disk = '[modules]\nrules = ["virtio_blk"]\n[vm]\nmachine = "%s"\n'
    on_q35 = drivers.module_closure(template(disk % "q35-qboot"), index())
    assert "virtio_pci" in on_q35 and "virtio_mmio" not in on_q35 and on_q35.index("virtio") < on_q35.index("virtio_blk")
    assert "virtio_mmio" in drivers.module_closure(template(disk % "microvm"), index())


def test_network_brings_its_driver_and_a_kernel_without_it_is_one_line():
    networked = template('[network]\n[vm]\nmachine = "microvm"\n')
    assert drivers.device_drivers(networked) == [("virtio_net", "[network]")]
    assert "virtio_net" in drivers.module_closure(networked, index())
    assert drivers.module_closure(networked, index(builtin="kernel/drivers/net/virtio_net.ko\n")) is not None
    without = kmod.parse_index("6.1.0-test", DEP.replace("kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/"
                                                         "virtio_ring.ko kernel/drivers/virtio/virtio.ko\n", ""),
                               "", "", "")
    with pytest.raises(kmod.ModuleError, match=r"has \[network\], and kernel 6.1.0-test has no virtio_net driver"):
        drivers.module_closure(networked, without)

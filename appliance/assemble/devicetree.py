"""Device trees of aarch64 bundles, read and written with pyfdt (pure).

QEMU's `virt` machine generates its device tree for the exact machine and devices it
was started with (`-machine virt,dumpdtb=FILE` writes it and exits). A bundle carries
that tree as `board.dtb`, with `/chosen` set (bootargs, stdout-path) and, when the
template asks, the nodes the appliance does not use removed; the runner boots it with
`-dtb`, and QEMU then adds only what it always adds to /chosen (the initrd's place, the
random seeds).

What pruning removes, each only when nothing the appliance runs needs it:
- the PCIe host bridge (`pcie@...`) when every device sits on virtio-mmio;
- the flash banks (`flash@...`): the kernel is loaded by QEMU, not from flash;
- virtio-mmio transports that no device will occupy (QEMU gives the first `-device`
  the highest address, so the N highest are kept for N devices);
- the GIC's ITS (it translates the MSIs of PCI devices) without PCI;
- the platform bus, fw-cfg, the PL031 RTC, and the PL061 GPIO with the gpio-keys node
  that refers to it (the power button: the appliance powers itself off through PSCI).
"""

from __future__ import annotations

import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyfdt.pyfdt import Fdt, FdtBlobParse, FdtNode, FdtProperty, FdtPropertyStrings

from appliance import proc
from appliance.assemble.template import ProfiledChannel, RootDisk, Template
from appliance.fsutil import atomic_write
from appliance.machines import Arch, shape


class DeviceTreeError(ValueError):
    pass


STDOUT_PATH = "/pl011@9000000"  # virt's console UART


def parse(blob: bytes) -> Fdt:
    try:
        return FdtBlobParse(io.BytesIO(blob)).to_fdt()
    except Exception as exc:  # pyfdt raises bare Exceptions for a bad blob
        raise DeviceTreeError(f"not a device tree blob: {exc}") from None


def to_dtb(tree: Fdt) -> bytes:
    blob = tree.to_dtb()
    assert isinstance(blob, bytes)
    return blob


def to_dts(tree: Fdt) -> str:
    return str(tree.to_dts())


def _children(node: FdtNode) -> list[FdtNode]:
    return [item for item in node if isinstance(item, FdtNode)]


def _prop(node: FdtNode, name: str) -> FdtProperty | None:
    return next((item for item in node if isinstance(item, FdtProperty) and item.get_name() == name), None)


def compatible(node: FdtNode) -> list[str]:
    prop = _prop(node, "compatible")
    return [str(s) for s in prop] if isinstance(prop, FdtPropertyStrings) else []


def set_chosen(tree: Fdt, bootargs: str, stdout_path: str) -> None:
    """/chosen's bootargs and stdout-path (created if missing), replacing what was there."""
    root = tree.get_rootnode()
    chosen = next((n for n in _children(root) if n.get_name() == "chosen"), None)
    if chosen is None:
        chosen = FdtNode("chosen")
        chosen.set_parent_node(root)
        root.append(chosen)
    for name, value in (("bootargs", bootargs), ("stdout-path", stdout_path)):
        if _prop(chosen, name) is not None:
            chosen.remove(name)
        chosen.append(FdtPropertyStrings(name, [value]))


_UNIT = re.compile(r"@([0-9a-fA-F]+)$")


def _address(node: FdtNode) -> int:
    match = _UNIT.search(node.get_name())
    return int(match[1], 16) if match else -1


@dataclass(frozen=True)
class Pruning:
    virtio_devices: int  # virtio-mmio devices the runner attaches: their transports stay
    pci: bool = False  # whether any device sits on PCI (then the PCIe bridge stays)


ALWAYS_UNUSED = ("platform-bus@", "fw-cfg@", "pl031@", "pl061@", "gpio-keys", "flash@")


def prune(tree: Fdt, plan: Pruning) -> list[str]:
    """Remove what PLAN says the appliance does not use; returns the removed paths."""
    root = tree.get_rootnode()
    removed = []
    transports = sorted((n for n in _children(root) if "virtio,mmio" in compatible(n)), key=_address, reverse=True)
    unused = {id(n) for n in transports[plan.virtio_devices:]}
    for node in _children(root):
        name = node.get_name()
        if (id(node) in unused or name.startswith(ALWAYS_UNUSED)
                or (name.startswith("pcie@") and not plan.pci)):
            root.remove(name)
            removed.append("/" + name)
        elif name.startswith("intc@") and not plan.pci:  # the GIC's ITS translates PCI devices' MSIs
            for its in [c for c in _children(node) if c.get_name().startswith("its@")]:
                node.remove(its.get_name())
                removed.append(f"/{name}/{its.get_name()}")
    return removed


def grouped(removed: list[str]) -> list[str]:
    """REMOVED for people: nodes of one kind counted together ("32 x virtio_mmio")."""
    counts: dict[str, int] = {}
    for path in removed:
        kind = path.rsplit("/", 1)[-1].split("@")[0]
        counts[kind] = counts.get(kind, 0) + 1
    return [f"{n} x {kind}" if n > 1 else kind for kind, n in counts.items()]


def summary(tree: Fdt) -> dict[str, Any]:
    """How many nodes, and the compatible strings with how many nodes carry each."""
    nodes = 0
    counts: dict[str, int] = {}
    for _, item in tree.get_rootnode().walk():
        if isinstance(item, FdtNode):
            nodes += 1
            for value in compatible(item):
                counts[value] = counts.get(value, 0) + 1
    return {"nodes": nodes + 1, "compatible": dict(sorted(counts.items()))}


def qemu_version(arch: Arch) -> str:
    """The version of the QEMU whose device tree a bundle of ARCH carries (a tree dumped
    by another QEMU may differ: the bundle is rebuilt when it changes)."""
    return proc.run([proc.find_tool(arch.qemu), "--version"], timeout=30).stdout.splitlines()[0]


def virtio_devices(template: Template) -> int:
    """How many virtio-mmio devices the runner attaches to a bundle of TEMPLATE."""
    return int(template.root is not RootDisk.NONE) + int(template.network) + int(template.profiled is ProfiledChannel.VIRTIO)


def board_dtb(template: Template, target: Path, cmdline: str) -> dict[str, Any]:
    """QEMU's own device tree for the bundle's machine (dumped by QEMU for the same
    machine, CPU, memory and vCPUs the runner starts), with /chosen set and, unless the
    template says `prune = false`, what the appliance does not use removed; written to
    TARGET. Returns what bundle.json records of it."""
    arch = template.arch
    qemu = proc.find_tool(arch.qemu)
    machine = shape(template.machine).qemu_args
    with tempfile.TemporaryDirectory(prefix="appliance-dtb-") as tmp:
        dumped = Path(tmp) / "qemu.dtb"
        proc.run([qemu, machine[0], f"{machine[1]},dumpdtb={dumped}", "-cpu", "max", "-m", str(template.memory_mib),
                  "-smp", str(template.cpus), "-nodefaults", "-display", "none"], timeout=60)
        tree = parse(dumped.read_bytes())
    before = summary(tree)
    removed = prune(tree, Pruning(virtio_devices(template))) if template.dtb_prune else []
    set_chosen(tree, cmdline, STDOUT_PATH)
    blob = to_dtb(tree)
    atomic_write(target, blob)
    after = summary(tree)
    print(f"  device tree: {after['nodes']} nodes ({before['nodes']} in QEMU's), {len(blob)} bytes")
    return {"source": f"{arch.qemu} {' '.join(machine)} dumpdtb", "qemu": qemu_version(arch),
            "pruned": template.dtb_prune, "removed": removed, "nodes": after["nodes"], "nodes_qemu": before["nodes"],
            "compatible": after["compatible"]}

"""Which kernel modules an appliance ships: the template's module rules, the drivers its
VM's devices need ([network]'s virtio_net), and the virtio transport of the machine it is
built for, closed over their dependencies (kmod) and prepared for the initrd (modfiles).
The SCons adapter (actions.make_initrd) calls it; everything here is testable without a
build."""

from __future__ import annotations

from appliance.assemble import kernelfetch, kmod, modfiles
from appliance.assemble.template import Template
from appliance.machines import TRANSPORTS, shape


def modules_for(template: Template, files: kernelfetch.KernelFiles) -> tuple[list[modfiles.ModuleFile], list[str]]:
    """The template's module closure, prepared for the initrd, and the virtio transports
    the kernel has (built in, or shipped in that closure)."""
    if not template.modules and (not device_drivers(template) or files.modules is None):
        # nothing asked, or a kernel without modules: its drivers are built in
        return [], transports(files, None, set())
    if files.modules is None or not files.modules.is_dir():
        raise kmod.ModuleError(f"template {template.name} asks for modules but kernel {files.release} "
                               "has no modules directory (give MODULES=... with KERNEL=...)")
    if files.modules.name != files.release:
        raise kmod.ModuleError(f"modules directory {files.modules} is for {files.modules.name}, "
                               f"the kernel is {files.release}: give the matching MODULES=")
    index = kmod.load_index(files.modules)
    names = module_closure(template, index)
    prepared = modfiles.prepare(index, files.modules, names, template.modules_strip,
                                check=lambda path: kernelfetch.check_cached(files, path))
    return prepared, transports(files, index, set(names))


def transports(files: kernelfetch.KernelFiles, index: kmod.ModuleIndex | None, shipped: set[str]) -> list[str]:
    """The virtio transports the bundle's kernel has: built in, or among the shipped modules."""
    if index is None:
        if files.modules is None or not (files.modules / "modules.dep").is_file():
            return []
        index = kmod.load_index(files.modules)
    return [t for t in TRANSPORTS if t in index.builtin or t in shipped]


def module_closure(template: Template, index: kmod.ModuleIndex) -> list[str]:
    """The template's modules in load order, with the virtio transport of the machine it
    is built for when it uses virtio (a disk template built for q35 needs virtio_pci,
    which it does not name because microvm, the default, uses virtio_mmio)."""
    blocked = template.modules_blocked if template.modules_blocked is not None else kmod.DEFAULT_BLOCKED
    roots = kmod.select(index, template.modules, blocked)
    for driver, why in device_drivers(template):
        if driver in index.paths:
            roots.add(driver)
        elif driver not in index.builtin:
            raise kmod.ModuleError(f"template {template.name} has {why}, and kernel {index.release} has no "
                                   f"{driver} driver (neither built in nor a module): use a kernel with it")
    transport = shape(template.machine).virtio_transport
    # a virtio driver in the closure (virtio core itself may be built in, as on arm64)
    if transport in index.paths and any(name.startswith("virtio") for name in kmod.closure(index, roots, blocked)):
        roots |= {transport}
    return kmod.closure(index, roots, blocked)


def device_drivers(template: Template) -> list[tuple[str, str]]:
    """The drivers the VM's devices need beyond the template's own module rules, each
    with the template setting that adds the device."""
    return [("virtio_net", "[network]")] if template.network else []

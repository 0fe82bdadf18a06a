"""Builder functions for the SCons recipes, and the build's resolved configuration.

SCons decides *when* a target is out of date; these functions say *what* it is. Each
builder is `make_x(target, source, env)`; `BuildConfig.action()` wraps one so that an
ApplianceError prints a single `error:` line and fails the build, with no traceback.
"""

from __future__ import annotations

import errno
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance import __version__, bundle, netspec, proc
from appliance.build import (
    apt,
    devicetree,
    firmware,
    guestprog,
    initramfs,
    kernel,
    kmod,
    minikernel,
    modfiles,
    packages,
    pkglock,
    release,
    rootdisk,
)
from appliance.build.template import (
    KERNEL_COMPRESSIONS,
    PROFILED_DEVICES,
    RootDisk,
    Template,
    find_template,
    load_template,
    retarget,
)
from appliance.errors import ApplianceError, KernelError, TemplateError
from appliance.fsutil import atomic_path, atomic_write
from appliance.machines import TRANSPORTS, Arch, Machine, profile
from appliance.paths import ROOT

TEMPLATES = ROOT / "rootfs_templates"
PROGRAMS = ROOT / "recipes" / "programs"
LOCK = ROOT / "recipes" / "kernel" / "debian.lock"
ARM64_LOCK = ROOT / "recipes" / "kernel" / "debian-arm64.lock"  # Debian's arm64 kernel, for aarch64 templates
SOURCE_LOCK = ROOT / "recipes" / "kernel" / "linux-source.lock"
MINIMAL = ROOT / "recipes" / "kernel" / "minimal"  # fragments and the probe patch
FRAGMENTS = ("base", "virt", "probes")
QBOOT_LOCK = ROOT / "firmware" / "qboot.lock"


@dataclass(frozen=True)
class BuildConfig:
    template: Template
    own_kernel: str  # KERNEL=..., or "" for the template's kernel
    source_date_epoch: int
    own_modules: str = ""  # MODULES=..., with KERNEL=
    qboot_src: str = ""  # QBOOT_SRC=..., or "" for Debian's qemu source package
    kernel_src: str = ""  # KERNEL_SRC=..., or "" for the locked linux-source package
    verbose: bool = False  # VERBOSE=1: show the kernel build as it goes
    build_dir: str = "#build"  # BUILD_DIR=...: where outputs go, as SCons names it ('#' = the checkout's top)
    variant: str = ""  # what the options changed from the template as written ("" = nothing)

    @property
    def out_name(self) -> str:
        """The bundle's folder: the template's name, and its variant after a '+', so
        `build/<template>` always means the template as written."""
        return f"{self.template.name}+{self.variant}" if self.variant else self.template.name

    def out(self, *parts: str) -> str:
        """An output path under BUILD_DIR, as SCons names it."""
        return "/".join((self.build_dir, *parts))

    def real_path(self, *parts: str) -> Path:
        """An output under BUILD_DIR as a real path (SCons hands sources to actions by such paths)."""
        top = self.build_dir.removeprefix("#")
        return (ROOT / top if self.build_dir.startswith("#") else Path(top)).joinpath(*parts)

    @property
    def programs_dir(self) -> str:
        """Where the guest programs go: one folder per architecture."""
        arch = self.template.arch
        return "programs" if arch is Arch.X86_64 else f"programs-{arch.value}"

    @property
    def qemu_version(self) -> str:
        """The version of the QEMU whose device tree an aarch64 bundle carries; read while
        SCons reads the recipes, so a missing QEMU is one line and exit 2 right away."""
        from SCons.Script import Exit

        try:
            return proc.run([proc.find_tool(self.template.arch.qemu), "--version"]).stdout.splitlines()[0]
        except ApplianceError as exc:
            print(f"error: {exc} (aarch64 bundles carry QEMU's device tree for virt: install qemu-system-arm, "
                  "./setup does)", file=sys.stderr)
            Exit(2)
            raise  # not reached: Exit raises SystemExit

    @property
    def compiler(self) -> list[str]:
        return guestprog.command(self.template.arch)

    @property
    def programs_path(self) -> Path:
        return self.real_path(self.programs_dir)

    @property
    def kernel_lock(self) -> Path:
        return ARM64_LOCK if self.template.arch is Arch.AARCH64 else LOCK

    @property
    def contents_path(self) -> Path:
        """make_initrd's list of every file with its source, which make_bundle records."""
        return self.real_path("contents", f"{self.out_name}.json")

    @property
    def pvh_entry(self) -> bool:
        """The Debian kernel's bzImage is decompressed at build time and booted through
        its PVH entry (a KERNEL= image too, when the template asks)."""
        return not self.minimal and self.template.kernel_entry == "pvh"

    @property
    def minimal(self) -> bool:
        return not self.own_kernel and self.template.kernel == "minimal"

    def minimal_recipe(self) -> minikernel.Recipe:
        """The minimal kernel recipe from the repo's fragments and patch (cheap: read on
        every SCons run as the kernel's signature)."""
        if self.kernel_src:
            source_id = minikernel.own_source(Path(self.kernel_src))[1]
        else:
            source_id = minikernel.read_lock(SOURCE_LOCK).deb_sha256
        return minikernel.Recipe(source_id, minikernel.read_fragments(MINIMAL, FRAGMENTS + self.template.kernel_fragments),
                                 (MINIMAL / "appliance-probes.patch").read_text(),
                                 self.template.kernel_compression)

    def minimal_kernel(self) -> kernel.KernelFiles:
        cache = kernel.cache_dir()
        if self.kernel_src:
            source = minikernel.own_source(Path(self.kernel_src))[0]
        else:
            source = minikernel.fetch_source(minikernel.read_lock(SOURCE_LOCK), cache)
        return minikernel.build(self.minimal_recipe(), source, cache, verbose=self.verbose)

    def qboot_tree(self) -> Path:
        """The qboot source tree (fetched into the cache once), checked; called while
        SCons reads the recipes, so a failure is one line and exit 2 right away."""
        from SCons.Script import Exit

        try:
            firmware.check_m32()
            if self.qboot_src:
                return firmware.check_tree(Path(self.qboot_src))
            lock = firmware.read_lock(QBOOT_LOCK)
            return firmware.check_tree(firmware.fetch_debian(lock, kernel.cache_dir()))
        except ApplianceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            Exit(2)
            raise  # not reached: Exit raises SystemExit

    def template_file(self, src: str) -> str:
        """A [[files]] src as SCons names it: '#' marks a path from the checkout's top,
        and must not be put before an absolute one (a template given by its full path)."""
        path = Path(self.template.folder) / src
        return str(path) if path.is_absolute() else f"#{path}"

    def iso_boots(self) -> bool:
        """Whether an ISO of this build can reach its disks when booted on a PC."""
        if self.template.arch is not Arch.X86_64:
            return False  # the ISO boots through isolinux, a PC's boot loader
        return self.template.root is RootDisk.NONE or profile(self.template.machine).virtio_transport == "virtio_pci"

    def packages_signature(self) -> str:
        return packages.signature(self.template) if self.template.has_packages else ""

    def kernel_signature(self) -> str:
        """What the kernel (and its modules) are, for SCons: the lock file, or for KERNEL=
        and MODULES= their paths with size and mtime (a kernel rebuilt in place, or a
        depmod run, then rebuilds what used them)."""
        if self.minimal:
            return "minimal " + self.minimal_recipe().key()
        if not self.own_kernel:
            return self.kernel_lock.read_text()
        paths = [Path(self.own_kernel)] + ([Path(self.own_modules) / "modules.dep"] if self.own_modules else [])
        stamps = [f"{p}={p.stat().st_size}:{p.stat().st_mtime_ns}" if p.exists() else f"{p}=missing" for p in paths]
        return " ".join(stamps)

    def kernel_files(self) -> kernel.KernelFiles:
        if self.own_kernel:
            return kernel.own_kernel(Path(self.own_kernel), Path(self.own_modules) if self.own_modules else None)
        if self.minimal:
            return self.minimal_kernel()
        return kernel.fetch_debian(kernel.read_lock(self.kernel_lock))

    def action(self, name: str) -> Any:
        from SCons.Action import Action  # only inside SCons

        return Action(_guarded(BUILDERS[name]), f"{name.replace('_', ' ')} -> $TARGET")


Builder = Callable[[BuildConfig, list[Any], list[Any]], None]


def _guarded(builder: Builder) -> Callable[[list[Any], list[Any], Any], int]:
    """An SCons action running BUILDER: an ApplianceError becomes one line and a failure.

    The closure holds only the builder function, whose code is stable, so SCons' action
    signature stays the same from run to run; the configuration comes from env and its
    content reaches SCons as Value() sources of each target."""

    def run(target: list[Any], source: list[Any], env: Any) -> int:
        try:
            builder(env["APPLIANCE"], target, source)
        except ApplianceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: {os_error_line(exc, Path(str(target[0])))}", file=sys.stderr)
            return 1
        return 0

    return run


def os_error_line(exc: OSError, target: Path) -> str:
    """One line for a file error while building TARGET, naming the file it hit (the
    build folder and the cache can be on different disks: say which one is full)."""
    where = Path(exc.filename) if exc.filename else target
    if exc.errno == errno.ENOSPC:
        return f"no space left on the disk holding {where} (building {target}): free space there, or set BUILD_DIR"
    return f"building {target}: {exc.strerror or exc} ({where})"


def minimal_recipe_of(manifest: dict[str, Any]) -> minikernel.Recipe:
    """The recipe a minimal-kernel bundle was built from (the locked source), checked
    against the key its manifest recorded."""
    facts = manifest.get("build", {}).get("kernel", {})
    if facts.get("source") != "minimal" or facts.get("kernel_src"):
        raise KernelError("this needs a bundle built on the minimal kernel from the locked source "
                                 "(kernel = \"minimal\", e.g. build/benchmark-minimal)")
    extra = tuple(f for f in facts.get("fragments", FRAGMENTS) if f not in FRAGMENTS)
    recipe = minikernel.Recipe(minikernel.read_lock(SOURCE_LOCK).deb_sha256,
                               minikernel.read_fragments(MINIMAL, FRAGMENTS + extra),
                               (MINIMAL / "appliance-probes.patch").read_text(), facts.get("compression", "none"))
    if recipe.key() != facts.get("recipe"):
        raise KernelError("the bundle was built from another version of recipes/kernel/minimal: rebuild it")
    return recipe


def default_minimal_recipe() -> minikernel.Recipe:
    """The minimal kernel as `kernel = "minimal"` builds it without extra fragments."""
    return minikernel.Recipe(minikernel.read_lock(SOURCE_LOCK).deb_sha256, minikernel.read_fragments(MINIMAL, FRAGMENTS),
                             (MINIMAL / "appliance-probes.patch").read_text(), "none")


def minimal_source() -> Path:
    """The locked linux-source tree, unpacked in the cache (fetched once)."""
    return minikernel.fetch_source(minikernel.read_lock(SOURCE_LOCK), kernel.cache_dir())


def build_minimal(recipe: minikernel.Recipe, verbose: bool = False) -> kernel.KernelFiles:
    """RECIPE's kernel, from the cache or built now in the shared object tree."""
    return minikernel.build(recipe, minimal_source(), kernel.cache_dir(), verbose=verbose)


def cache_in_use() -> list[Path]:
    """The cache entries the checkout's locks and templates refer to: the pinned Debian
    kernels (amd64 and arm64), the pinned linux-source and its patched tree and objects, the minimal
    kernel image of every compression the templates use (and the default), qboot, and
    the .debs the templates' package locks pin."""
    cache = kernel.cache_dir()
    lock, source = kernel.read_lock(LOCK), minikernel.read_lock(SOURCE_LOCK)
    templates = [load_template(p) for p in TEMPLATES.glob("*.toml")]
    variants = {("none", ())} | {(t.kernel_compression, t.kernel_fragments) for t in templates}
    recipes = [minikernel.Recipe(source.deb_sha256, minikernel.read_fragments(MINIMAL, FRAGMENTS + extra),
                                 (MINIMAL / "appliance-probes.patch").read_text(), c) for c, extra in sorted(variants)]
    source_key = recipes[0].source_key()
    arm64 = kernel.read_lock(ARM64_LOCK)
    return [cache / "kernels" / f"{lock.package}_{lock.version}", cache / "kernels" / f"{arm64.package}_{arm64.version}",
            cache / "sources" / f"{source.package}_{source.version}",
            cache / "minikernel" / f"src-{source_key}", cache / "minikernel" / f"out-{source_key}",
            *(minikernel.image_dir(cache, r.key()) for r in recipes),
            cache / "qboot" / firmware.read_lock(QBOOT_LOCK).orig_sha256[:16],
            *(apt.cached_deb(pin, cache) for t in templates if t.debian
              for pin in (pkglock.read(packages.lock_file(t)) or pkglock.Lock((), ())).pins)]


def available_programs() -> set[str]:
    return {p.stem for p in PROGRAMS.glob("*.c")} - {"init"}


def configure(env: Any) -> BuildConfig:
    """Resolve the build's configuration from SCons options, or exit with one line."""
    from SCons.Script import Exit

    try:
        path = find_template(env["TEMPLATE"], TEMPLATES)
        written = template = load_template(path, available_programs())
        if env["ARCH"]:
            template = retarget(template, _one_of("ARCH", env["ARCH"], tuple(a.value for a in Arch)))
        if env["MACHINE"]:
            template = retarget(template, template.arch.value, Machine(env["MACHINE"]))
        if env["KERNEL_RECIPE"]:
            template = replace(template, kernel=_one_of("KERNEL_RECIPE", env["KERNEL_RECIPE"], ("debian", "minimal")))
        if env["KERNEL_COMPRESSION"]:
            template = replace(template, kernel_compression=_one_of(
                "KERNEL_COMPRESSION", env["KERNEL_COMPRESSION"], KERNEL_COMPRESSIONS))
        epoch = int(env["SOURCE_DATE_EPOCH"])
        if env["KERNEL"]:
            kernel.own_kernel(Path(env["KERNEL"]))  # a wrong KERNEL= is one line now, not a build of it
    except ApplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        Exit(2)
    except ValueError:
        print("error: SOURCE_DATE_EPOCH must be whole seconds and MACHINE one of: "
              f"{', '.join(m.value for m in Machine)}", file=sys.stderr)
        Exit(2)
    if env["MODULES"] and not env["KERNEL"]:
        print("error: MODULES= goes with KERNEL= (the Debian kernel brings its own modules)", file=sys.stderr)
        Exit(2)
    return BuildConfig(template, env["KERNEL"], epoch, own_modules=env["MODULES"], qboot_src=env["QBOOT_SRC"],
                       kernel_src=env["KERNEL_SRC"], verbose=env["VERBOSE"] not in ("", "0"),
                       build_dir=scons_dir(env["BUILD_DIR"]), variant=variant_name(written, template, env["KERNEL"]))


def scons_dir(build_dir: str) -> str:
    """BUILD_DIR as SCons names it: relative paths from the checkout's top ('#')."""
    return build_dir.rstrip("/") if Path(build_dir).is_absolute() else f"#{build_dir.rstrip('/') or 'build'}"


def variant_name(written: Template, built: Template, own_kernel: str) -> str:
    """What the build options changed, as a folder-name suffix a person can read:
    "q35-qboot", "minimal-kernel+lz4", "kernel-bzImage"; "" when nothing changed."""
    parts = []
    if built.arch is not written.arch:  # "aarch64" (its machine, virt, goes without saying)
        parts.append(built.arch.value)
    elif built.machine is not written.machine:
        parts.append(built.machine.value)
    if own_kernel:
        parts.append(f"kernel-{Path(own_kernel).name}")
    elif built.kernel != written.kernel:
        parts.append(f"{built.kernel}-kernel")
    if built.kernel == "minimal" and not own_kernel and built.kernel_compression != written.kernel_compression:
        parts.append(built.kernel_compression)
    return "+".join(parts)


def _one_of(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise TemplateError(f"{option}={value} is not one of: {', '.join(allowed)}")
    return value


def compile_program(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    size = guestprog.compile_static(Path(str(source[0])), Path(str(target[0])), config.template.arch)
    print(f"  {Path(str(target[0])).name}: {size} bytes (static, stripped)")


def copy_kernel(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    if config.minimal:
        recipe = config.minimal_recipe()
        print(f"  minimal kernel {recipe.key()} ({recipe.compression}): cached, or built now (minutes)")
    image = config.kernel_files().image
    if config.pvh_entry:  # what `appliance tune`'s PVH knob boots, baked into the bundle
        data = kernel.pvh_vmlinux(image.read_bytes())
        atomic_write(Path(str(target[0])), data)
        print(f"  kernel: {len(data)} bytes, {image.name} decompressed for its PVH entry")
        return
    with atomic_path(Path(str(target[0]))) as tmp:
        shutil.copyfile(image, tmp)
    print(f"  kernel: {image.stat().st_size} bytes")


def modules_for(config: BuildConfig) -> tuple[list[modfiles.ModuleFile], str]:
    """The template's module closure, prepared for the initrd, and the kernel release."""
    template = config.template
    files = config.kernel_files()
    if not template.modules and (not device_drivers(template) or files.modules is None):
        return [], files.release  # nothing asked, or a kernel without modules: its drivers are built in
    if files.modules is None or not files.modules.is_dir():
        raise kmod.ModuleError(f"template {template.name} asks for modules but kernel {files.release} "
                               "has no modules directory (give MODULES=... with KERNEL=...)")
    if files.modules.name != files.release:
        raise kmod.ModuleError(f"modules directory {files.modules} is for {files.modules.name}, "
                               f"the kernel is {files.release}: give the matching MODULES=")
    index = kmod.load_index(files.modules)
    names = module_closure(template, index)
    prepared = modfiles.prepare(index, files.modules, names, template.modules_strip,
                                check=lambda path: kernel.check_cached(files, path))
    return prepared, files.release


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
    transport = profile(template.machine).virtio_transport
    # a virtio driver in the closure (virtio core itself may be built in, as on arm64)
    if transport in index.paths and any(name.startswith("virtio") for name in kmod.closure(index, roots, blocked)):
        roots |= {transport}
    return kmod.closure(index, roots, blocked)


def device_drivers(template: Template) -> list[tuple[str, str]]:
    """The drivers the VM's devices need beyond the template's own module rules, each
    with the template setting that adds the device."""
    return [("virtio_net", "[network]")] if template.network else []


def virtio_transports(config: BuildConfig) -> list[str]:
    """The virtio transports the bundle's kernel has: built in, or among its modules."""
    files = config.kernel_files()
    if files.modules is None or not (files.modules / "modules.dep").is_file():
        return []
    index = kmod.load_index(files.modules)
    template = config.template
    shipped = set(module_closure(template, index)) if template.modules or device_drivers(template) else set()
    return [t for t in TRANSPORTS if t in index.builtin or t in shipped]


def make_initrd(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    template = config.template
    programs = config.programs_path.resolve()
    built = {p.name: p.read_bytes() for p in (Path(str(s)).resolve() for s in source) if p.parent == programs}
    init = built.pop("init")
    modules, release = modules_for(config)
    extra = packages.placed(template, kernel.cache_dir()) if template.has_packages else []
    data, raw_size, parts = initramfs.build(template, init, built, config.source_date_epoch, modules, release, extra)
    out = Path(str(target[0]))
    for module in modules:
        print(f"  module {module.name}: {len(module.data)} bytes (package: {module.original_size})")
    if parts.disk is not None:
        image = Path(str(target[1]))
        make = rootdisk.make_pmem if template.root is RootDisk.PMEM else rootdisk.make_ext4
        make([p.entry for p in parts.disk], template.root_size_mib, image, config.source_date_epoch)
        print(f"  root disk: {image.name}, ext4, {template.root_size_mib} MiB ({template.root.value})")
    atomic_write(config.contents_path, (json.dumps(parts.provenance(), indent=1) + "\n").encode())
    atomic_write(out, data)
    print(f"  initrd: {len(data)} bytes {template.compression.value} ({raw_size} uncompressed), init {len(init)} bytes")


def make_bundle(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    template = config.template
    folder = Path(str(target[0])).parent
    files = config.kernel_files()
    cmdline = " ".join(filter(None, (profile(template.machine).cmdline, "panic=-1", template.cmdline)))
    build = {
        "template": template.to_dict(),
        "kernel": _kernel_facts(config, files),
        "source_date_epoch": config.source_date_epoch,
        "tools": {"appliance": __version__, **guestprog.toolchain_versions()},
        "compression": template.compression.value,
    }
    build["initrd"] = _initrd_facts(folder / "initrd", files)
    # every file of the initrd and the root disk with its source (make_initrd's list)
    build["contents"] = json.loads(config.contents_path.read_text())
    if template.machine is not Machine.Q35_QBOOT:  # left by an earlier MACHINE=q35-qboot build
        (folder / "firmware.bin").unlink(missing_ok=True)
    disks = [] if template.root.value == "none" else [{"file": "rootfs.img", "kind": template.root.value}]
    tree = board_dtb(config, folder / bundle.DTB, cmdline) if template.arch is Arch.AARCH64 else None
    if tree is None:
        (folder / bundle.DTB).unlink(missing_ok=True)  # left by an earlier ARCH=aarch64 build
    data = bundle.manifest(folder, name=template.name, cmdline=cmdline, machine=template.machine,
                           memory_mib=template.memory_mib, cpus=template.cpus,
                           user_probes=template.probes, build=build, disks=disks,
                           firmware=template.machine is Machine.Q35_QBOOT, dtb=tree is not None)
    if tree is not None:
        data["device_tree"] = tree
    data["cmdline_base"] = " ".join(filter(None, ("panic=-1", template.cmdline)))
    data["virtio_transports"] = virtio_transports(config)
    data["kernel_acpi"] = not config.minimal  # tinyconfig + our fragments: no ACPI (see qemu.argv)
    data.update(network_facts(template))
    if template.profiled:  # the runner adds the channel's device and reads what arrives on it
        data["profiled"] = {"channel": template.profiled, "device": PROFILED_DEVICES[template.profiled],
                            "sample_ms": template.profiled_sample_ms}
    bundle.write(folder, data)
    print(f"  bundle {folder} ready")


def virtio_devices(template: Template) -> int:
    """How many virtio-mmio devices the runner attaches to a bundle of TEMPLATE."""
    return (template.root is not RootDisk.NONE) + template.network + (template.profiled == "virtio")


def board_dtb(config: BuildConfig, target: Path, cmdline: str) -> dict[str, Any]:
    """QEMU's own device tree for the bundle's machine (dumped by QEMU for the same
    machine, CPU, memory and vCPUs the runner starts), with /chosen set and, unless the
    template says `prune = false`, what the appliance does not use removed; written to
    TARGET. Returns what bundle.json records of it."""
    template = config.template
    arch = template.arch
    qemu = proc.find_tool(arch.qemu)
    machine = profile(template.machine).qemu_args
    with tempfile.TemporaryDirectory(prefix="appliance-dtb-") as tmp:
        dumped = Path(tmp) / "qemu.dtb"
        proc.run([qemu, machine[0], f"{machine[1]},dumpdtb={dumped}", "-cpu", "max", "-m", str(template.memory_mib),
                  "-smp", str(template.cpus), "-nodefaults", "-display", "none"], timeout=60)
        tree = devicetree.parse(dumped.read_bytes())
    before = devicetree.summary(tree)
    removed = devicetree.prune(tree, devicetree.Pruning(virtio_devices(template))) if template.dtb_prune else []
    devicetree.set_chosen(tree, cmdline, devicetree.STDOUT_PATH)
    blob = devicetree.to_dtb(tree)
    atomic_write(target, blob)
    after = devicetree.summary(tree)
    print(f"  device tree: {after['nodes']} nodes ({before['nodes']} in QEMU's), {len(blob)} bytes")
    return {"source": f"{arch.qemu} {' '.join(machine)} dumpdtb", "qemu": config.qemu_version,
            "pruned": template.dtb_prune, "removed": removed, "nodes": after["nodes"], "nodes_qemu": before["nodes"],
            "compatible": after["compatible"]}


def network_facts(template: Template) -> dict[str, Any]:
    """bundle.json's network and service settings: what the runner sets up and checks."""
    facts: dict[str, Any] = {}
    if template.network:
        facts["network"] = {"forwards": [f.spec() for f in template.forwards], "restrict": template.restrict,
                            "control": netspec.CONTROL_PORT,
                            "guest": {"interface": netspec.INTERFACE, "address": netspec.GUEST_ADDRESS,
                                      "netmask": netspec.NETMASK, "gateway": netspec.GATEWAY, "dns": netspec.DNS}}
    if template.ready:
        facts["service"] = {"ready": template.ready.spec(), "send": template.send}
    return facts


def _kernel_facts(config: BuildConfig, files: kernel.KernelFiles) -> dict[str, Any]:
    if config.own_kernel:
        return {"release": files.release, "source": "KERNEL", "lock": None}
    if config.minimal:
        recipe = config.minimal_recipe()
        return {"release": files.release, "source": "minimal", "recipe": recipe.key(),
                "compression": recipe.compression, "fragments": [*FRAGMENTS, *config.template.kernel_fragments],
                "kernel_src": config.kernel_src or None,
                "lock": None if config.kernel_src else minikernel.read_lock(SOURCE_LOCK).__dict__}
    return {"release": files.release, "source": config.kernel_lock.name, "lock": kernel.read_lock(config.kernel_lock).__dict__,
            "entry": config.template.kernel_entry}


def _initrd_facts(path: Path, files: kernel.KernelFiles) -> dict[str, Any]:
    """Sizes recorded in bundle.json: the initrd's, each program's, and the modules'
    against the whole modules tree of the kernel."""
    from appliance.build import compress, cpio

    raw = compress.decompress(path.read_bytes())
    members = cpio.read(raw)
    modules = {e.path.rsplit("/", 1)[-1]: len(e.data) for e in members if e.path.endswith(".ko")}
    facts: dict[str, Any] = {
        "uncompressed_bytes": len(raw),
        "programs": {e.path: len(e.data) for e in members if e.path == "init" or e.path.startswith("bin/")},
        "modules": modules,
        "modules_bytes": sum(modules.values()),
    }
    if modules and files.modules is not None:
        facts["modules_tree_bytes"] = sum(p.stat().st_size for p in files.modules.rglob("*.ko*"))
    return facts


def prepare_qboot(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    """Copy the qboot tree into <build>/firmware/src and apply our fw_do_boot patch."""
    patch = Path(str(source[-1]))
    for src, dst in zip(source[:-1], target, strict=True):
        Path(str(dst)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(str(src), str(dst))
    out_root = next(Path(str(t)).parent for t in target if Path(str(t)).name == "main.c")  # the tree's top
    proc.run(["patch", "-p1", "--forward", "--quiet", "-i", str(patch.resolve())], cwd=out_root)


def flatten_qboot(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    with atomic_path(out) as tmp:
        proc.run(["objcopy", "-O", "binary", str(source[0]), str(tmp)])
        firmware.check_bios(tmp)
    print(f"  {out.name}: {out.stat().st_size} bytes, BENCHMARK_HACK probes 0xf5:1, 0xf5:5, 0xf4:2/3/4")


def copy_firmware(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    with atomic_path(Path(str(target[0]))) as tmp:
        shutil.copyfile(str(source[0]), tmp)


def make_release_archive(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    release.make_tar_zst(Path(str(source[0])).parent, out, config.source_date_epoch)
    print(f"  {out.name}: {out.stat().st_size} bytes")


def make_release_iso(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    release.make_iso(Path(str(source[0])).parent, out)
    print(f"  {out.name}: {out.stat().st_size} bytes (El Torito, isolinux)")


def make_release_qcow2(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    release.make_qcow2(Path(str(source[0])).parent, out)
    print(f"  {out.name}: {out.stat().st_size} bytes (qcow2)")


def make_sha256sums(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    folder = Path(str(target[0])).parent
    release.write_sha256sums(folder, [Path(str(s)).name for s in source])


BUILDERS: dict[str, Builder] = {
    "make_release_archive": make_release_archive,
    "make_sha256sums": make_sha256sums,
    "make_release_iso": make_release_iso,
    "make_release_qcow2": make_release_qcow2,
    "prepare_qboot": prepare_qboot,
    "flatten_qboot": flatten_qboot,
    "copy_firmware": copy_firmware,
    "compile_program": compile_program,
    "copy_kernel": copy_kernel,
    "make_initrd": make_initrd,
    "make_bundle": make_bundle,
}

"""The SCons adapter: the build's options resolved into a BuildConfig (configure), and
the actions SCons' builders run (make_x(config, target, source)).

SCons decides *when* a target is out of date; these actions say *what* it is, by
calling the modules that own each artifact. `action()` wraps one so that an
ApplianceError prints a single `error:` line and fails the build, with no traceback.
Only SConstruct and the SConscripts import this module (the CLI never does:
tests/unit/test_layers.py checks it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from appliance import __version__, bundle, fsutil, proc
from appliance.assemble import (
    bootdisk,
    cache,
    devicetree,
    drivers,
    firmware,
    guestprog,
    imageinit,
    imagekernel,
    initramfs,
    kernelchoice,
    kernelfetch,
    manifest,
    oci,
    packages,
    pieces,
    plugin,
    release,
    rootdisk,
    uki,
)
from appliance.assemble.config import BuildConfig
from appliance.assemble.template import (
    TEMPLATES,
    Kernel,
    KernelCompression,
    Loader,
    RootDisk,
    RootFormat,
    Template,
    check_combined,
    find_template,
    load_template,
    retarget,
    with_loader,
    with_needed_fragments,
)
from appliance.errors import ApplianceError, TemplateError
from appliance.fsutil import atomic_path, atomic_write
from appliance.machines import Arch, Machine
from appliance.paths import ROOT

PACKAGE = ROOT / "appliance"

E = TypeVar("E", bound=Enum)


def action(name: str) -> Any:
    """The SCons action that runs builder NAME."""
    from SCons.Action import Action  # only inside SCons

    return Action(_guarded(BUILDERS[name]), f"{name.replace('_', ' ')} -> $TARGET")


def _exit(exc: ApplianceError, advice: str = "") -> NoReturn:
    """One line and exit 2, while SCons reads the recipes."""
    from SCons.Script import Exit

    print(f"error: {exc}{advice}", file=sys.stderr)
    Exit(2)
    raise SystemExit(2)  # not reached: Exit raises SystemExit


def qemu_version(config: BuildConfig) -> str:
    """The version of the QEMU whose device tree an aarch64 bundle carries; a missing
    QEMU is one line and exit 2 right away."""
    try:
        return devicetree.qemu_version(config.template.arch)
    except ApplianceError as exc:
        _exit(exc, " (aarch64 bundles carry QEMU's device tree for virt: install qemu-system-arm, ./setup does)")


def qboot_tree(config: BuildConfig) -> Path:
    """The qboot source tree (fetched into the cache once), checked; a failure is one
    line and exit 2 right away."""
    try:
        return firmware.source_tree(config.qboot_src, kernelfetch.cache_dir())
    except ApplianceError as exc:
        _exit(exc)


def hold_locks(config: BuildConfig) -> None:
    """For this SCons run: BUILD_DIR to ourselves (a second build of it waits, saying so,
    instead of colliding on its temporary files), and a share of the cache (which
    `appliance cache --clean` must not empty under us)."""
    fsutil.hold(config.real_path(".appliance.lock"), f"another build is writing {config.real_path()}")
    fsutil.hold(kernelfetch.cache_dir() / cache.LOCK, "`appliance cache --clean` is cleaning the cache", shared=True)


# The code that makes each artifact, by module: part of the artifact's SCons signature,
# so that changing it (an upgrade, a fix of the cpio writer or the module closure)
# rebuilds what it made instead of leaving old outputs that look current.
CODE = {
    "kernel": ("assemble/actions", "assemble/kernelchoice", "assemble/kernelfetch", "assemble/minikernel", "assemble/kconfig",
               "assemble/imagekernel"),
    "initrd": ("assemble/actions", "assemble/config", "assemble/kernelchoice", "assemble/initramfs", "assemble/cpio",
               "assemble/compress", "assemble/pieces", "assemble/layout", "assemble/kmod", "assemble/modfiles",
               "assemble/packages", "assemble/sources", "assemble/apt", "assemble/pkglock", "assemble/elfclosure",
               "assemble/rootdisk", "assemble/template", "assemble/oci", "assemble/licenses", "assemble/imageinit",
               "assemble/drivers", "netspec", "probes"),
    "bundle": ("assemble/actions", "assemble/kernelchoice", "assemble/devicetree", "assemble/guestprog", "assemble/uki",
               "assemble/bootdisk",
               "assemble/manifest",
               "bundle", "probes", "machines", "netspec"),
    "release": ("assemble/release", "assemble/uki", "bundle"),
}


def code_signature(artifact: str) -> str:
    """A digest of the tool's version and the source of the modules that make ARTIFACT."""
    digest = hashlib.sha256(__version__.encode())
    for module in CODE[artifact]:
        digest.update((PACKAGE / f"{module}.py").read_bytes())
    return f"code {artifact} {digest.hexdigest()}"


def kernel_signature(config: BuildConfig) -> str:
    return kernelchoice.signature(config)


def packages_signature(config: BuildConfig) -> str:
    """What the files from outside the template are: the packages' lock and host files,
    an image's manifest (its digest names every layer)."""
    template = config.template
    parts = [packages.signature(template) if template.has_packages else ""]
    if template.image is not None:
        parts.append(oci.signature(template.image, Path(template.folder)))
    return "\n".join(parts)


def compiler(config: BuildConfig) -> list[str]:
    return guestprog.command(config.template.arch)


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
            _drop_unfinished(env["APPLIANCE"])
            return 1
        except OSError as exc:
            print(f"error: {os_error_line(exc, Path(str(target[0])))}", file=sys.stderr)
            _drop_unfinished(env["APPLIANCE"])
            return 1
        return 0

    return run


def _drop_unfinished(config: BuildConfig) -> None:
    """After a failed action: a bundle folder that never got its bundle.json (its kernel
    copied, its initrd not made) is debris, not a bundle; remove it, and an empty facts
    folder. SCons makes them again on the next build."""
    folder = config.real_path(config.out_name)
    if folder.is_dir() and not (folder / bundle.MANIFEST).exists():
        shutil.rmtree(folder, ignore_errors=True)
    facts = config.facts_path.parent
    if facts.is_dir() and not any(facts.iterdir()):
        facts.rmdir()


def os_error_line(exc: OSError, target: Path) -> str:
    """One line for a file error while building TARGET (fsutil.os_error_line)."""
    return fsutil.os_error_line(exc, target, doing=f"building {target}", advice="free space there, or set BUILD_DIR")


def configure(env: Any) -> BuildConfig:
    """Resolve the build's configuration from SCons options, or exit with one line."""
    from SCons.Script import Exit

    try:
        path = find_template(env["TEMPLATE"], TEMPLATES)
        written = template = load_template(path, guestprog.available())
        if env["ARCH"]:
            template = retarget(template, _one_of("ARCH", env["ARCH"], Arch).value)
        if env["MACHINE"]:
            template = retarget(template, template.arch.value, _one_of("MACHINE", env["MACHINE"], Machine))
        if env["KERNEL_RECIPE"]:
            template = check_combined(with_needed_fragments(
                replace(template, kernel=_one_of("KERNEL_RECIPE", env["KERNEL_RECIPE"], Kernel))))
        if env["KERNEL_COMPRESSION"]:
            template = replace(template, kernel_compression=_one_of("KERNEL_COMPRESSION", env["KERNEL_COMPRESSION"],
                                                                    KernelCompression))
        if env["LOADER"]:
            template = with_loader(template, env["LOADER"])
        epoch = _epoch(env["SOURCE_DATE_EPOCH"])
        if env["KERNEL"]:
            kernelfetch.own_kernel(Path(env["KERNEL"]))  # a wrong KERNEL= is one line now, not a build of it
    except ApplianceError as exc:
        _exit(exc)
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
    if built.kernel is Kernel.MINIMAL and not own_kernel and built.kernel_compression != written.kernel_compression:
        parts.append(built.kernel_compression)
    if built.loader is not written.loader:  # "systemd-boot"
        parts.append(built.loader.value)
    return "+".join(parts)


def _epoch(value: str) -> int:
    if not value.isdigit():
        raise TemplateError(f"SOURCE_DATE_EPOCH={value} is not whole seconds since 1970 (e.g. 0, or `git log -1 --format=%ct`)")
    return int(value)


def _one_of(option: str, value: str, choices: type[E]) -> E:
    """VALUE as a member of the closed choice CHOICES (the same names as in templates,
    the CLI and the JSON), or a TemplateError naming OPTION and the allowed values."""
    try:
        return choices(value)
    except ValueError:
        raise TemplateError(f"{option}={value} is not one of: {', '.join(str(c.value) for c in choices)}") from None


def compile_program(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    size, cached = guestprog.compile_cached(Path(str(source[0])), Path(str(target[0])), config.template.arch,
                                            kernelfetch.cache_dir() / "programs")
    print(f"  {Path(str(target[0])).name}: {size} bytes (static, stripped{', cached' if cached else ''})")


def copy_kernel(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    if config.minimal:
        recipe = kernelchoice.minimal_recipe(config)
        print(f"  minimal kernel {recipe.key()} ({recipe.compression}): cached, or built now (minutes)")
    image = kernelchoice.files(config).image
    if config.pvh_entry:  # what `appliance tune`'s PVH knob boots, baked into the bundle
        data = kernelfetch.pvh_vmlinux(image.read_bytes())
        atomic_write(Path(str(target[0])), data)
        print(f"  kernel: {len(data)} bytes, {image.name} decompressed for its PVH entry")
        return
    with atomic_path(Path(str(target[0]))) as tmp:
        shutil.copyfile(image, tmp)
    print(f"  kernel: {image.stat().st_size} bytes")


def make_initrd(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    """The initrd (and the root disk's image), and the facts make_bundle records of them:
    every file with its source, the sizes, the kernel's release and virtio transports."""
    template = config.template
    programs = config.programs_path.resolve()
    built = {p.name: p.read_bytes() for p in (Path(str(s)).resolve() for s in source) if p.parent == programs}
    init = built.pop("init")
    files = kernelchoice.files(config)
    modules, transports = drivers.modules_for(template, files)
    extra, debian = packages.placed(template, kernelfetch.cache_dir()) if template.has_packages else ([], [])
    if template.image is not None:  # the image's files, and what its config says to run
        container = oci.load(template.image[1], template.image[0], Path(template.folder), template.arch)
        brought = oci.apply(container)
        if template.image_init:  # systemd runs what the image holds; we add its probes
            extra += imageinit.adapt(template, brought, built.pop("probe"))
        else:
            extra += brought
            template = oci.running(template, container, brought)
    made = initramfs.build(template, init, built, config.source_date_epoch, modules=modules, release=files.release,
                           packages=extra, cache=pieces.cache_dir(kernelfetch.cache_dir()))
    parts = made.parts
    lacking = kernelchoice.missing(kernelchoice.config_symbols(files), initramfs.kernel_needs(template, parts))
    if lacking:
        symbol, why = lacking[0]
        fix = (' (kernel_fragments = ["userland"] has it)' if symbol == "BINFMT_SCRIPT" and config.minimal else "")
        raise TemplateError(f"template {template.name}: {why}, and kernel {files.release} has no CONFIG_{symbol}: "
                            f"use a kernel with it{fix}, or start it another way (payload = [\"/bin/sh\", SCRIPT])")
    out = Path(str(target[0]))
    for module in modules:
        print(f"  module {module.name}: {len(module.data)} bytes (package: {module.original_size})")
    if parts.disk is not None:
        image = Path(str(target[1]))
        cached = rootdisk.make_root([p.entry for p in parts.disk], image, config.source_date_epoch,
                                    erofs=template.root_format is RootFormat.EROFS, pmem=template.root is RootDisk.PMEM,
                                    size_mib=template.root_size_mib, cache=pieces.cache_dir(kernelfetch.cache_dir()))
        print(f"  root disk: {image.name}, {template.root_format.value}, {image.stat().st_size >> 20} MiB "
              f"({template.root.value}{', writable overlay in RAM' if template.root_writable else ''})"
              f"{', cached' if cached else ''}")
    initrd_facts = _initrd_facts(made, files)
    data = made.data
    if template.image_initrd:  # the kernel unpacks both archives: theirs, then ours with our init beside theirs
        theirs = imagekernel.initrd(template, kernelfetch.cache_dir(), files.release).read_bytes()
        data = theirs + bytes(-len(theirs) % 4) + made.data
        initrd_facts["image_initrd_bytes"] = len(theirs)  # the other sizes are of our part
        print(f"  the image's initrd: {len(theirs)} bytes, ours appended")
    facts = {"kernel_release": files.release, "virtio_transports": transports, "contents": parts.provenance(),
             "initrd": initrd_facts, "packages": debian}
    atomic_write(config.facts_path, (json.dumps(facts, indent=1) + "\n").encode())
    atomic_write(out, data)
    for piece in made.pieces:  # the build's log says which pieces were compressed now (tests read it)
        print(f"  piece {piece.name}: {piece.bytes} bytes ({piece.raw_bytes} uncompressed, {piece.files} files), "
              f"{'cached' if piece.cached else 'made'}")
    print(f"  initrd: {len(made.data)} bytes {template.compression.value} ({made.raw_size} uncompressed), "
          f"init {len(init)} bytes")


def _initrd_facts(made: initramfs.Built, files: kernelfetch.KernelFiles) -> dict[str, Any]:
    """Sizes recorded in bundle.json: the initrd's and its pieces', each program's, and
    the modules' against the whole modules tree of the kernel (from the archive's
    members, as built)."""
    members = [p.entry for p in made.parts.initrd if p.entry.kind == "file"]
    modules = {e.path.rsplit("/", 1)[-1]: len(e.data) for e in members if e.path.endswith(".ko")}
    facts: dict[str, Any] = {
        "uncompressed_bytes": made.raw_size,
        "pieces": [piece.fact() for piece in made.pieces],
        "programs": {e.path: len(e.data) for e in members
                     if e.path in ("init", initramfs.WRAPPER_INIT) or e.path.startswith("bin/")},
        "modules": modules,
        "modules_bytes": sum(modules.values()),
    }
    if modules and files.modules is not None:
        facts["modules_tree_bytes"] = _modules_bytes(files.modules)
    return facts


def _modules_bytes(tree: Path) -> int:
    """The bytes of every module file under TREE (os.walk: pathlib's rglob took 90 ms of
    a 0.5 s warm build over Debian's 4000 modules)."""
    return sum(os.stat(os.path.join(top, name)).st_size for top, _, names in os.walk(tree)
               for name in names if ".ko" in name)


def make_bundle(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    template = config.template
    folder = Path(str(target[0])).parent
    facts = json.loads(config.facts_path.read_text())  # make_initrd's, a declared source of this target
    cmdline = manifest.cmdline(template)
    build = {
        "template": template.to_dict(),
        "kernel": kernelchoice.facts(config, facts["kernel_release"]),
        "source_date_epoch": config.source_date_epoch,
        "tools": {"appliance": __version__, **guestprog.toolchain_versions()},
        "compression": template.compression.value,
        "initrd": facts["initrd"],
        "contents": facts["contents"],  # every file of the initrd and the root disk with its source
        "packages": facts.get("packages", []),  # each Debian package: version, arch, .deb sha256, license
    }
    if template.machine is not Machine.Q35_QBOOT:  # left by an earlier MACHINE=q35-qboot build
        (folder / "firmware.bin").unlink(missing_ok=True)
    tree = devicetree.board_dtb(template, folder / bundle.DTB, cmdline) if template.arch is Arch.AARCH64 else None
    if tree is None:
        (folder / bundle.DTB).unlink(missing_ok=True)  # left by an earlier ARCH=aarch64 build
    boot_disk = template.loader is Loader.SYSTEMD_BOOT
    if boot_disk:  # what OVMF boots: a GPT disk whose ESP holds systemd-boot, its entry, the kernel and initrd
        esp = bootdisk.build(folder / "kernel", folder / "initrd", cmdline, folder / bundle.BOOT_DISK,
                             epoch=config.source_date_epoch)
        print(f"  boot disk: {bundle.BOOT_DISK}, GPT, ESP of {esp.size >> 20} MiB (systemd-boot)")
    else:
        (folder / bundle.BOOT_DISK).unlink(missing_ok=True)  # left by an earlier LOADER=systemd-boot build
    carries_uki = template.machine is Machine.Q35_OVMF and not boot_disk
    if carries_uki:  # what OVMF boots: the kernel, initrd and command line as one EFI program
        uki.build(folder / "kernel", folder / "initrd", cmdline,
                  release_text=uki.osrel(template.name, facts["kernel_release"]), out=folder / bundle.UKI,
                  epoch=config.source_date_epoch)
    else:
        (folder / bundle.UKI).unlink(missing_ok=True)  # left by an earlier MACHINE=q35-ovmf build
    bundle.write_manifest(folder, manifest.spec(template, build=build, transports=facts["virtio_transports"],
                                                device_tree=tree, uki=carries_uki, minimal_kernel=config.minimal))
    print(f"  bundle {folder} ready")


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


def make_plugin(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    """The instruction clock's plugin for the installed QEMU (plugin.ensure builds it once
    into the cache, against that QEMU's own header), copied to TARGET."""
    built = plugin.ensure(plugin.installed_qemu())
    with atomic_path(Path(str(target[0]))) as tmp:
        shutil.copyfile(built, tmp)
    print(f"  {Path(str(target[0])).name}: the instruction clock's TCG plugin ({built.parent.name})")


def copy_firmware(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    with atomic_path(Path(str(target[0]))) as tmp:
        shutil.copyfile(str(source[0]), tmp)


def _released(out: Path, what: str = "") -> None:
    print(f"  {out.name}: {out.stat().st_size} bytes{what}")


def make_release_archive(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    release.make_tar_zst(Path(str(source[0])).parent, out, config.source_date_epoch)
    _released(out)


def make_release_iso(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    release.make_iso(Path(str(source[0])).parent, out)
    _released(out, " (El Torito, isolinux)")


def make_release_uki(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    """<template>.efi: the bundle's kernel and initrd with a PC's command line, as one
    EFI program a UEFI machine boots (OVMF: `-kernel NAME.efi`, or from an ESP)."""
    out, folder = Path(str(target[0])), Path(str(source[0])).parent
    target_bundle = bundle.load(folder)
    uki.build(folder / "kernel", folder / "initrd", target_bundle.cmdline_on(Machine.Q35_OVMF),
              release_text=uki.osrel(target_bundle.name, target_bundle.kernel_release), out=out,
              epoch=config.source_date_epoch)
    _released(out, " (UKI: systemd's EFI stub, kernel, initrd, command line)")


def make_release_qcow2(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    out = Path(str(target[0]))
    release.make_qcow2(Path(str(source[0])).parent, out)
    _released(out, " (qcow2)")


def make_sha256sums(config: BuildConfig, target: list[Any], source: list[Any]) -> None:
    folder = Path(str(target[0])).parent
    release.write_sha256sums(folder, [Path(str(s)).name for s in source])


BUILDERS: dict[str, Builder] = {
    "make_release_archive": make_release_archive,
    "make_sha256sums": make_sha256sums,
    "make_release_iso": make_release_iso,
    "make_release_qcow2": make_release_qcow2,
    "make_release_uki": make_release_uki,
    "prepare_qboot": prepare_qboot,
    "flatten_qboot": flatten_qboot,
    "make_plugin": make_plugin,
    "copy_firmware": copy_firmware,
    "compile_program": compile_program,
    "copy_kernel": copy_kernel,
    "make_initrd": make_initrd,
    "make_bundle": make_bundle,
}

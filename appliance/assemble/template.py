"""Rootfs templates: TOML in, one frozen, validated `Template` out.

A template says *what* goes into an appliance (init behaviour, programs, files, VM
shape); recipes decide *how* it is built. Every mistake in a template (an unknown key,
a wrong type, a file that does not exist, an absolute or `..` path) is a TemplateError
naming the template and the key.
"""

from __future__ import annotations

import enum
import json
import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from appliance.assemble.compress import Compression
from appliance.errors import TemplateError
from appliance.machines import Arch, Machine, cmdline_problem, machines_of, shape
from appliance.netspec import CONTROL_PORT, Forward, Ready, SpecError, forward_for, parse_forward, parse_ready
from appliance.paths import ROOT
from appliance.probes import unit_probe

TEMPLATES = ROOT / "rootfs_templates"  # the templates `appliance build NAME` and TEMPLATE=NAME find


class Mount(enum.StrEnum):
    """Filesystems the init can mount, each at its usual place."""

    PROC = "proc"
    SYSFS = "sysfs"
    DEVTMPFS = "devtmpfs"
    TMPFS = "tmpfs"

    @property
    def target(self) -> str:
        return {"proc": "/proc", "sysfs": "/sys", "devtmpfs": "/dev", "tmpfs": "/tmp"}[self.value]


class RootDisk(enum.StrEnum):
    """Where the root filesystem lives."""

    NONE = "none"  # the initramfs is the root
    VIRTIO_BLK = "virtio-blk"  # an ext4 image on a virtio block device
    PMEM = "pmem"  # an ext4 image on an emulated NVDIMM, mounted with DAX


class RootFormat(enum.StrEnum):
    """The root disk's filesystem."""

    EXT4 = "ext4"  # writable
    EROFS = "erofs"  # read-only, compact, nothing to replay or check at mount; DAX on pmem


class Kernel(enum.StrEnum):
    """Which kernel a template boots."""

    DEBIAN = "debian"  # Debian's, pinned in recipes/kernel/debian.lock
    MINIMAL = "minimal"  # recipes/kernel/minimal: tinyconfig + fragments, built here
    IMAGE = "image"  # the one [image] carries in /boot, with its modules (assemble/imagekernel.py)


class KernelEntry(enum.StrEnum):
    """How the Debian kernel is entered."""

    BZIMAGE = "bzimage"  # as packaged
    PVH = "pvh"  # decompressed at build time, booted through its PVH entry


class Loader(enum.StrEnum):
    """What starts the kernel."""

    NONE = "none"  # QEMU loads it (fw_cfg), or OVMF runs the bundle's UKI
    SYSTEMD_BOOT = "systemd-boot"  # OVMF boots a GPT disk whose ESP holds systemd-boot, the kernel and initrd


class KernelCompression(enum.StrEnum):
    """The minimal kernel's image; NONE boots the uncompressed vmlinux through PVH."""

    NONE = "none"
    LZ4 = "lz4"
    ZSTD = "zstd"
    XZ = "xz"


class ModulesOnError(enum.StrEnum):
    """What the init does when a module does not load."""

    STOP = "stop"
    CONTINUE = "continue"


class ProfiledChannel(enum.StrEnum):
    """profiled's channel to the host (NONE: no profiled)."""

    NONE = ""
    SERIAL = "serial"  # a second ISA serial port (any kernel)
    VIRTIO = "virtio"  # a virtio-console port (kernels with virtio_console; cheaper per byte)


class AfterPayload(enum.StrEnum):
    POWEROFF = "poweroff"
    REBOOT = "reboot"


@dataclass(frozen=True)
class FileSpec:
    src: str  # relative to the template's folder
    dst: str  # path inside the appliance, relative to /
    mode: int = 0o644  # the template's `mode`, else the host file's permission bits


@dataclass(frozen=True)
class Template:
    name: str
    description: str = ""
    arch: Arch = Arch.X86_64
    kernel: Kernel = Kernel.DEBIAN
    kernel_compression: KernelCompression = KernelCompression.NONE  # the minimal kernel's image
    kernel_fragments: tuple[str, ...] = ()  # optional fragments of recipes/kernel/minimal/ (e.g. "ftrace")
    kernel_entry: KernelEntry = KernelEntry.BZIMAGE
    compression: Compression = Compression.ZSTD
    compression_level: int = 0  # zstd's level, 1-19; 0: compress.default_level (by size)
    mounts: tuple[Mount, ...] = (Mount.PROC, Mount.SYSFS, Mount.DEVTMPFS)
    payload: tuple[str, ...] = ()  # argv inside the guest; empty: no payload
    after: AfterPayload = AfterPayload.POWEROFF
    programs: tuple[str, ...] = ()  # guest programs from recipes/programs/, installed in /bin
    files: tuple[FileSpec, ...] = ()
    machine: Machine = Machine.MICROVM
    memory_mib: int = 256
    cpus: int = 1
    cmdline: str = ""
    loader: Loader = Loader.NONE  # [vm] loader: what starts the kernel (systemd-boot from a disk, under OVMF)
    probes: tuple[tuple[int, str], ...] = ()  # user-defined (code, name), codes 0x20-0x7f
    modules: tuple[str, ...] = ()  # ordered rules: "name", "glob", "-glob" (see kmod.py)
    modules_blocked: tuple[str, ...] | None = None  # None: kmod.DEFAULT_BLOCKED
    profiled: ProfiledChannel = ProfiledChannel.NONE  # its channel when [profiled] enables it
    profiled_sample_ms: int = 0  # /proc/stat samples while the payload runs; 0: none
    modules_on_error: ModulesOnError = ModulesOnError.STOP
    modules_strip: bool = True
    root: RootDisk = RootDisk.NONE
    root_size_mib: int = 64
    root_format: RootFormat = RootFormat.EXT4
    root_writable: bool = False  # [rootfs] writable = "tmpfs": an overlay over a read-only root
    host: tuple[str, ...] = ()  # [packages] host: host programs with their ELF closure
    host_files: tuple[str, ...] = ()  # [packages] host_files: absolute host globs
    debian: tuple[str, ...] = ()  # [packages] debian: packages, with their closure (pinned in <name>.lock)
    exclude: tuple[str, ...] | None = None  # [packages] exclude: path globs; None: sources.DEFAULT_EXCLUDE
    shell: tuple[str, ...] = ()  # [init] shell: argv run on the console after the payload; () none
    network: bool = False  # [network]: virtio-net on QEMU's user-mode network
    forwards: tuple[Forward, ...] = ()  # [network] forward (and the one [service] ready needs)
    restrict: bool = False  # [network] restrict: the guest reaches nothing but its forwards
    ready: Ready | None = None  # [service] ready: the payload is a service, up when this answers
    send: str = ""  # [service] send: what a tcp check sends first (else it waits for a banner)
    dtb_prune: bool = True  # [devicetree] prune: remove what the appliance does not use (aarch64)
    image: tuple[str, str] | None = None  # [image]: ("oci", "DIR:TAG"), ("docker-archive", "FILE") or ("rootfs", "FILE")
    image_init: bool = False  # [image] init = "image": the image's /sbin/init (systemd) runs as PID 1, not our payload
    image_units: tuple[str, ...] = ()  # [image] units: systemd units whose start is probed, besides the targets
    image_initrd: bool = False  # [image] initrd = "image": the image's own initrd mounts the root (kernel = "image")
    env: tuple[str, ...] = ()  # the payload's environment (NAME=VALUE), from an image's config
    workdir: str = ""  # the payload's folder, from an image's config
    user: str = ""  # the payload's UID[:GID], from an image's config
    folder: str = field(default="", compare=False)

    @property
    def has_packages(self) -> bool:
        return bool(self.host or self.host_files or self.debian)

    @property
    def brings_files(self) -> bool:
        """Whether files come from outside the template (packages, an image): the build,
        not the parser, then checks that the payload is there."""
        return self.has_packages or self.image is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (enums as their values), without the host folder it was read from."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), default=_enum_value))
        del data["folder"]
        return data

    def to_json(self) -> str:
        """A stable text form: SCons uses it as the template's content signature."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _enum_value(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"cannot serialize {type(value).__name__}")


# `shell = true`: busybox's or any other /bin/sh
DEFAULT_SHELL = ("/bin/sh",)
# profiled's channel to the host, and the guest device it writes: a second ISA serial port
# (any kernel), or a virtio-console port (kernels with virtio_console; cheaper per byte).
# The virtio port is found by the name QEMU gives it (boot/qemu.py: profiled_args), not
# by the vportNpM number the kernel happens to give it.
PROFILED_DEVICES = {ProfiledChannel.SERIAL: "/dev/ttyS1", ProfiledChannel.VIRTIO: "virtio-port:appliance.profiled"}
KERNEL_COMPRESSIONS = tuple(c.value for c in KernelCompression)
# the minimal kernel's fragments a template may add (recipes/kernel/minimal/<name>.config)
OPTIONAL_FRAGMENTS = ("ftrace", "userland", "network", "erofs", "systemd")


def _fail(name: str, message: str) -> TemplateError:
    return TemplateError(f"template {name}: {message}")



# ---- the settings: each declared once, with its table, key, TOML type(s), parser and the
# Template field it sets (whose default is the setting's default). A setting made of
# several keys or tables (files, probes, [network] and [service], [image], [profiled])
# is parsed by its own function below; its keys are declared here too (field "").

@dataclass(frozen=True)
class Setting:
    table: str
    key: str
    kinds: type | tuple[type, ...]  # what TOML may give (a bool is never an int)
    field: str = ""  # the Template field it sets; "": parsed with others, by its own function
    parse: Callable[[str, Any], Any] = lambda name, value: value  # (template name, raw value) -> field value


def _enum_of(kind: type[enum.Enum], key: str) -> Callable[[str, Any], Any]:
    return lambda name, value: _choice(name, kind, key, value)


def _listed(key: str) -> Callable[[str, Any], tuple[str, ...]]:
    return lambda name, value: _strings(name, key, value)


def _within(low: int, high: int, message: str) -> Callable[[str, Any], int]:
    def parse(name: str, value: int) -> int:
        if not low <= value <= high:
            raise _fail(name, message)
        return value
    return parse


def _fragments(name: str, value: list[Any]) -> tuple[str, ...]:
    fragments = _strings(name, "[appliance] kernel_fragments", value)
    for fragment in fragments:
        if fragment not in OPTIONAL_FRAGMENTS:
            raise _fail(name, f"kernel_fragments: {fragment!r} is not one of: {', '.join(OPTIONAL_FRAGMENTS)}")
    return fragments


def _host_files(name: str, value: list[Any]) -> tuple[str, ...]:
    patterns = _strings(name, "[packages] host_files", value)
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise _fail(name, f"[packages] host_files {pattern!r} must be an absolute host path")
    return patterns


def _writable(name: str, value: str) -> bool:
    if value not in ("", "tmpfs"):
        raise _fail(name, f'[rootfs] writable = {value!r}: "tmpfs" (an overlay in RAM) is the one choice')
    return bool(value)


MEMORY = "[vm] memory_mib must be 16-65536 and cpus 1-64"

SETTINGS: tuple[Setting, ...] = (
    Setting("appliance", "description", str, "description"),
    Setting("appliance", "arch", str, "arch", _enum_of(Arch, "[appliance] arch")),
    Setting("appliance", "kernel", str, "kernel", _enum_of(Kernel, "kernel")),
    Setting("appliance", "kernel_compression", str, "kernel_compression",
            _enum_of(KernelCompression, "kernel_compression")),
    Setting("appliance", "kernel_fragments", list, "kernel_fragments", _fragments),
    Setting("appliance", "kernel_entry", str, "kernel_entry", _enum_of(KernelEntry, "kernel_entry")),
    Setting("appliance", "compression", str, "compression", _enum_of(Compression, "compression")),
    Setting("appliance", "compression_level", int, "compression_level",
            _within(0, 19, "[appliance] compression_level must be 1-19 (or 0: by the archive's size)")),
    Setting("init", "mounts", list, "mounts",
            lambda name, value: tuple(_choice(name, Mount, "[init] mounts", m)
                                      for m in _strings(name, "[init] mounts", value))),
    Setting("init", "payload", list, "payload",
            lambda name, value: _argv(name, "[init] payload", _strings(name, "[init] payload", value))),
    Setting("init", "after", str, "after", _enum_of(AfterPayload, "[init] after")),
    Setting("init", "shell", (bool, list), "shell", lambda name, value: _shell(name, value)),
    Setting("programs", "build", list, "programs", _listed("[programs] build")),
    Setting("vm", "machine", str, "machine", _enum_of(Machine, "[vm] machine")),
    Setting("vm", "memory_mib", int, "memory_mib", _within(16, 65536, MEMORY)),
    Setting("vm", "cpus", int, "cpus", _within(1, 64, MEMORY)),
    Setting("vm", "cmdline", str, "cmdline", lambda name, value: _cmdline(name, value)),
    Setting("vm", "loader", str, "loader", _enum_of(Loader, "[vm] loader")),
    Setting("modules", "rules", list, "modules", _listed("[modules] rules")),
    Setting("modules", "blocked", list, "modules_blocked", _listed("[modules] blocked")),
    Setting("modules", "on_error", str, "modules_on_error",
            lambda name, value: _on_error(name, value)),
    Setting("modules", "strip", bool, "modules_strip"),
    Setting("rootfs", "disk", str, "root", _enum_of(RootDisk, "[rootfs] disk")),
    Setting("rootfs", "size_mib", int, "root_size_mib", _within(8, 65536, "[rootfs] size_mib must be 8-65536")),
    Setting("rootfs", "format", str, "root_format", _enum_of(RootFormat, "[rootfs] format")),
    Setting("rootfs", "writable", str, "root_writable", _writable),
    Setting("profiled", "enabled", bool),
    Setting("profiled", "channel", str),
    Setting("profiled", "sample_ms", int, "profiled_sample_ms",
            _within(0, 60000, "[profiled] sample_ms must be 0-60000 (0: no samples)")),
    Setting("packages", "host", list, "host", _listed("[packages] host")),
    Setting("packages", "host_files", list, "host_files", _host_files),
    Setting("packages", "debian", list, "debian", _listed("[packages] debian")),
    Setting("packages", "exclude", list, "exclude", _listed("[packages] exclude")),
    Setting("network", "forward", list),
    Setting("network", "restrict", bool, "restrict"),
    Setting("service", "ready", str),
    Setting("service", "send", str, "send"),
    Setting("devicetree", "prune", bool, "dtb_prune"),
    *(Setting("image", key, str) for key in ("oci", "docker-archive", "rootfs", "init", "initrd")),
    Setting("image", "units", list),
)
# Known keys per table, with their expected types: anything else is an error ([probes]
# takes any name, [[files]] is an array of tables).
_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {"probes": {}}
for _setting in SETTINGS:
    _SCHEMA.setdefault(_setting.table, {})[_setting.key] = _setting.kinds


def _on_error(name: str, value: str) -> ModulesOnError:
    if value not in ("stop", "continue"):
        raise _fail(name, "[modules] on_error must be 'stop' or 'continue'")
    return ModulesOnError(value)


def _given(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Each single-key setting the template gives, parsed: Template field -> value."""
    return {setting.field: setting.parse(name, raw[setting.table][setting.key]) for setting in SETTINGS
            if setting.field and setting.key in raw.get(setting.table, {})}


def default(field_name: str) -> Any:
    """A Template field's default: the default of the setting that sets it."""
    return Template.__dataclass_fields__[field_name].default


def _check_tables(name: str, raw: dict[str, Any]) -> None:
    for table, value in raw.items():
        if table == "files":
            if not isinstance(value, list):
                raise _fail(name, "[[files]] must be an array of tables")
            continue
        if table not in _SCHEMA:
            raise _fail(name, f"unknown table [{table}] (known: {', '.join(sorted(_SCHEMA))}, files)")
        if not isinstance(value, dict):
            raise _fail(name, f"[{table}] must be a table")
        if table == "probes":
            continue
        for key, item in value.items():
            expected = _SCHEMA[table].get(key)
            if expected is None:
                known = ", ".join(sorted(_SCHEMA[table]))
                raise _fail(name, f"unknown key '{key}' in [{table}] (known: {known})")
            # TOML booleans are Python ints: reject `cpus = true` explicitly.
            kinds = expected if isinstance(expected, tuple) else (expected,)
            if not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds):
                raise _fail(name, f"[{table}] {key} must be a {' or '.join(k.__name__ for k in kinds)}")


def _choice(name: str, kind: type[enum.Enum], key: str, value: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise _fail(name, f"{key} = {value!r} is not one of: {allowed}") from None


def _relative(name: str, key: str, path: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise _fail(name, f"{key} {path!r} must be a relative path without '..'")
    return str(pure)


def _strings(name: str, key: str, items: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(i, str) and i for i in items):
        raise _fail(name, f"{key} must be a list of non-empty strings")
    return tuple(items)


def _files(name: str, folder: Path, raw: list[Any]) -> tuple[FileSpec, ...]:
    specs = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"src", "dst", "mode"} or not {"src", "dst"} <= set(item):
            raise _fail(name, f"[[files]] entry {i + 1} needs src and dst (and optional mode) only")
        if not isinstance(item["src"], str) or not isinstance(item["dst"], str):
            raise _fail(name, f"[[files]] entry {i + 1}: src and dst must be strings")
        src = _relative(name, "[[files]] src", item["src"])
        dst = _relative(name, "[[files]] dst", item["dst"])
        if item["dst"].endswith("/") or dst in (".", ""):
            raise _fail(name, f"[[files]] dst {item['dst']!r} names a folder: give the file's path in the appliance "
                              f"(e.g. {dst.rstrip('/') or 'etc'}/{PurePosixPath(str(item['src'])).name})")
        host = _template_file(name, folder, src)
        # by default the host file's permission bits, as cp -p and tar keep them
        mode = item.get("mode", stat.S_IMODE(host.stat().st_mode))
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise _fail(name, f"[[files]] mode of {src!r} must be an integer like 0o644")
        specs.append(FileSpec(src, dst, mode))
    return tuple(specs)


def _template_file(name: str, folder: Path, src: str) -> Path:
    """SRC of a [[files]] entry as the regular file it is, inside the template's folder:
    a symlink (of the file, or of a folder on its way) that leads out of the folder
    would copy a host file (/etc/shadow) into the image."""
    path = folder / src
    if not path.exists() and not path.is_symlink():
        raise _fail(name, f"[[files]] src {src!r} does not exist in {folder}")
    real, top = path.resolve(), folder.resolve()
    if not real.is_relative_to(top):
        raise _fail(name, f"[[files]] src {src!r} leads out of the template's folder (to {real}): copy the file "
                          "into the folder, or use [packages] host_files for host files")
    info = real.stat()
    if not stat.S_ISREG(info.st_mode):
        raise _fail(name, f"[[files]] src {src!r} is not a regular file: [[files]] copies files")
    return real


def _probes(name: str, raw: dict[str, Any]) -> tuple[tuple[int, str], ...]:
    out = []
    for probe, code in raw.items():
        if not isinstance(code, int) or isinstance(code, bool) or not 0x20 <= code <= 0x7F:
            raise _fail(name, f"[probes] {probe} must be a code from 0x20 to 0x7f")
        out.append((code, probe))
    codes = [c for c, _ in out]
    if len(set(codes)) != len(codes):
        raise _fail(name, "[probes] uses one code twice")
    return tuple(sorted(out))


IMAGE_KINDS = ("oci", "docker-archive", "rootfs")
IMAGE_INITS = ("appliance", "image")  # [image] init: ours runs the image's command, or the image's own init
# systemd unit names: a name, an optional instance after '@', one of the unit types
_UNIT = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|socket|target|mount|path|timer|device|swap)")


def _image(name: str, table: dict[str, Any] | None) -> tuple[str, str] | None:
    """[image]: exactly one of oci = "DIR:TAG", docker-archive = "FILE" and rootfs = "FILE"."""
    if table is None:
        return None
    given = [(k, v) for k, v in table.items() if k in IMAGE_KINDS]
    if len(given) != 1:
        raise _fail(name, '[image] takes one of oci = "DIR:TAG" (an OCI image layout), docker-archive = "FILE" '
                          '(`docker save` output) and rootfs = "FILE" (a root filesystem tar, as mmdebstrap writes)')
    kind, spec = given[0]
    if kind == "oci" and (":" not in spec or not spec.rpartition(":")[0] or not spec.rpartition(":")[2]):
        raise _fail(name, f'[image] oci = {spec!r}: give DIR:TAG, e.g. "image:latest"')
    return kind, spec


def _image_init(name: str, table: dict[str, Any], init: dict[str, Any], profiled: bool
                ) -> tuple[bool, tuple[str, ...]]:
    """[image] init and units: whether the image's own init runs, and the units it probes.
    With the image's init, systemd starts everything: our init's payload, shell and mounts,
    and profiled (which reports to our init), have no place."""
    which = table.get("init", "appliance")
    if which not in IMAGE_INITS:
        raise _fail(name, f"[image] init = {which!r}: 'appliance' (ours runs the image's command) or 'image' "
                          "(the image's own /sbin/init, e.g. systemd)")
    units = _strings(name, "[image] units", table.get("units", []))
    own = which == "image"
    if units and not own:
        raise _fail(name, "[image] units are probed by systemd: they need init = 'image'")
    for unit in units:
        if not _UNIT.fullmatch(unit):
            raise _fail(name, f"[image] units: {unit!r} is not a systemd unit name (e.g. 'ssh.service')")
    if len(set(units)) != len(units):
        raise _fail(name, "[image] units names one unit twice")
    taken = [key for key in ("payload", "shell", "mounts") if key in init]
    if own and (taken or profiled):
        what = f"[init] {taken[0]}" if taken else "[profiled]"
        raise _fail(name, f"[image] init = 'image' runs the image's own init (systemd), which starts and mounts "
                          f"everything: {what} belongs to our init; remove it")
    return own, units


def _image_initrd(name: str, table: dict[str, Any]) -> bool:
    """[image] initrd: whose initrd boots: ours (it mounts the root and execs the image's
    init) or the image's own (_check_image_initrd says what it goes with)."""
    which = table.get("initrd", "appliance")
    if which not in IMAGE_INITS:
        raise _fail(name, f"[image] initrd = {which!r}: 'appliance' (ours) or 'image' (the image's own "
                          "/boot/initrd.img, with kernel = 'image')")
    return bool(which == "image")


def _with_unit_probes(name: str, probes: tuple[tuple[int, str], ...], units: tuple[str, ...]
                      ) -> tuple[tuple[int, str], ...]:
    """[probes] and one probe per named unit, on the highest codes [probes] leaves free."""
    free = [code for code in range(0x7F, 0x1F, -1) if code not in {c for c, _ in probes}]
    if len(units) > len(free):  # never drop a unit: it would go unmeasured without a word
        raise _fail(name, f"[image] units names {len(units)} units; [probes] leaves {len(free)} codes (0x20-0x7f) "
                          "for them: name fewer")
    taken = {n for _, n in probes}
    added = []
    for unit, code in zip(units, free, strict=False):
        probe = unit_probe(unit)
        if probe in taken:
            raise _fail(name, f"[image] units: {unit}'s probe {probe!r} is a name [probes] or another unit has")
        taken.add(probe)
        added.append((code, probe))
    return tuple(sorted((*probes, *added)))


def _check_payload(name: str, payload: tuple[str, ...], programs: tuple[str, ...], files: tuple[FileSpec, ...],
                   packages: bool) -> None:
    """The payload must be an absolute guest path that the appliance itself provides
    (with [packages], the build checks it once the packages' files are known)."""
    if not payload or (packages and payload[0].startswith("/")):
        return
    provided = {f"/bin/{p}" for p in programs} | {"/" + f.dst for f in files if f.mode & 0o111}
    if payload[0] not in provided:
        have = ", ".join(sorted(provided)) or "nothing executable"
        raise _fail(name, f"[init] payload {payload[0]!r} is not in the appliance (it has: {have})")


def _cmdline(name: str, text: str) -> str:
    """[vm] cmdline, refused as early as can be when the kernel could never take it."""
    problem = cmdline_problem(text)
    if problem:
        raise _fail(name, f"[vm] cmdline: {problem}")
    return text


MAX_ARGS = 31  # the init's argv for the payload or the shell (recipes/programs/init.c: MAX_WORDS - 1)


def _argv(name: str, key: str, argv: tuple[str, ...]) -> tuple[str, ...]:
    """An argv the init can carry exactly (every byte but NUL, up to MAX_ARGS words)."""
    if any("\0" in word for word in argv):
        raise _fail(name, f"{key} has a NUL byte in an argument: execve() cannot pass it")
    if len(argv) > MAX_ARGS:
        raise _fail(name, f"{key} has {len(argv)} words; the init takes at most {MAX_ARGS} "
                          "(wrap them in a script: payload = [\"/bin/sh\", \"/opt/run.sh\"])")
    return argv


def _shell(name: str, value: bool | list[Any]) -> tuple[str, ...]:
    if value is True:
        return DEFAULT_SHELL
    if value is False:
        return ()
    argv = _argv(name, "[init] shell", _strings(name, "[init] shell", value))
    if not argv or not argv[0].startswith("/"):
        raise _fail(name, "[init] shell must be true or an argv whose first word is an absolute guest path")
    return argv


def _network(name: str, raw: dict[str, Any]) -> tuple[Forward, ...]:
    forwards = []
    for spec in _strings(name, "[network] forward", raw.get("forward", [])):
        try:
            forwards.append(parse_forward(spec))
        except SpecError as exc:
            raise _fail(name, f"[network] {exc}") from None
    if any(f.guest_port == CONTROL_PORT and f.proto == "tcp" for f in forwards):
        raise _fail(name, f"[network] guest port {CONTROL_PORT} is the init's stop channel: forward another one")
    fixed = [(f.proto, f.host_address, f.host_port) for f in forwards if f.host_port]
    if len(set(fixed)) != len(fixed):
        raise _fail(name, "[network] forward uses one host port twice")
    return tuple(forwards)


def _service(name: str, raw: dict[str, Any], *, network: bool, forwards: tuple[Forward, ...],
             payload: tuple[str, ...], shell: tuple[str, ...], probes: tuple[tuple[int, str], ...]
             ) -> tuple[Ready | None, tuple[Forward, ...]]:
    """[service]'s readiness check, and the forwards with the one it needs (host port 0
    when the template forwards the guest port nowhere)."""
    if "ready" not in raw:
        if raw:
            raise _fail(name, "[service] needs ready = 'tcp:PORT', 'http:PORT/PATH' or 'probe:NAME'")
        return None, forwards
    try:
        ready = parse_ready(raw["ready"])
    except SpecError as exc:
        raise _fail(name, f"[service] {exc}") from None
    if not payload:
        raise _fail(name, "[service] needs [init] payload: the long-running program that serves")
    if shell:
        raise _fail(name, "[service] and [init] shell do not go together: the host stops a service itself")
    if not network:  # the host reaches the service, and stops it, over the network
        raise _fail(name, f"[service] ready = {ready.spec()!r} needs [network] (the host checks the service and "
                          "stops the VM through it): add a [network] table; the ready port's forward is added for you")
    if ready.kind == "probe" and ready.probe not in {n for _, n in probes}:
        raise _fail(name, f"[service] ready = {ready.spec()!r}: no probe {ready.probe!r} in [probes]")
    if "send" in raw and ready.kind != "tcp":
        raise _fail(name, "[service] send is for a tcp check (an http check sends its own GET)")
    if ready.needs_network and forward_for(forwards, ready) is None:
        forwards = (*forwards, Forward("tcp", 0, ready.port))
    return ready, forwards


def check_combined(t: Template) -> Template:
    """T, once the settings that depend on each other agree (the template's own, or after
    ARCH=, MACHINE=, LOADER=, KERNEL_RECIPE= changed one); one line where they do not."""
    _check_arch(t)
    _check_loader(t)
    _check_image_initrd(t)
    return t


def _check_arch(t: Template) -> None:
    """What an architecture's appliances can be: aarch64 boots Debian's arm64 kernel on
    virt, without the x86-only parts (the minimal kernel, PVH, NVDIMM, COM2)."""
    if shape(t.machine).arch is not t.arch:
        fits = ", ".join(m.value for m in machines_of(t.arch))
        raise _fail(t.name, f"[vm] machine = {t.machine.value!r} is not an {t.arch.value} machine (for "
                            f"{t.arch.value}: {fits})")
    if t.arch is Arch.X86_64:  # [devicetree] waits for an ARCH=aarch64 build
        return
    # a list, not a dict: booleans as keys would keep one message per truth value
    why = [(t.kernel is Kernel.MINIMAL, "kernel = 'minimal' is built for x86_64 only: use kernel = 'debian' "
                                        "(Debian's arm64 kernel)"),
           (t.kernel_entry is not KernelEntry.BZIMAGE, "kernel_entry = 'pvh' is an x86 boot protocol"),
           (t.root is RootDisk.PMEM, "[rootfs] disk = 'pmem' (an NVDIMM) is x86-only here: use 'virtio-blk'"),
           (t.profiled is ProfiledChannel.SERIAL, "[profiled] channel = 'serial' is a second ISA serial port: use "
                                                  "'virtio' on aarch64"),
           (t.has_packages, "[packages] brings host (x86_64) programs and amd64 packages: not for aarch64 yet")]
    for bad, message in why:
        if bad:
            raise _fail(t.name, f"arch = 'aarch64': {message}")


def _check_loader(t: Template) -> None:
    """systemd-boot is a UEFI program that starts a kernel through the kernel's EFI stub."""
    if t.loader is Loader.NONE:
        return
    if t.machine is not Machine.Q35_OVMF:
        raise _fail(t.name, f"[vm] loader = {t.loader.value!r} is a UEFI boot loader: it needs machine = 'q35-ovmf' "
                            f"(not {t.machine.value!r})")
    if t.kernel is Kernel.MINIMAL or t.kernel_entry is KernelEntry.PVH:
        raise _fail(t.name, f"[vm] loader = {t.loader.value!r} starts the kernel through its EFI stub, which only "
                            "the Debian kernel's bzImage has: kernel = 'debian', kernel_entry = 'bzimage'")


def _check_image_initrd(t: Template) -> None:
    """The image's own initrd goes with its kernel and its init, and mounts an ext4 root
    itself (our init, appended to it, then only loads [modules] and the network's, brings
    up the network, fires its probes and execs the image's initrd)."""
    if not t.image_initrd:
        return
    why = [(t.kernel is not Kernel.IMAGE, "it goes with the image's kernel: [appliance] kernel = 'image'"),
           (not t.image_init, "it starts the image's own init: [image] init = 'image'"),
           (t.root is not RootDisk.VIRTIO_BLK or t.root_format is not RootFormat.EXT4 or t.root_writable,
            "it mounts the root itself, read-write: [rootfs] disk = 'virtio-blk', format = 'ext4', no writable")]
    for bad, message in why:
        if bad:
            raise _fail(t.name, f"[image] initrd = 'image': {message}")


RESERVED = {"init": "the init", "etc/appliance/init.conf": "the init's configuration"}


def _check_collisions(name: str, files: tuple[FileSpec, ...], programs: tuple[str, ...]) -> None:
    """Two things may not land on one path: a [[files]] dst against the init, its
    configuration, a built program in /bin, or another [[files]] entry."""
    taken = {**RESERVED, **{f"bin/{p}": f"the program {p} built into /bin" for p in programs}}
    for spec in files:
        if spec.dst in taken:
            raise _fail(name, f"[[files]] dst {spec.dst!r} collides with {taken[spec.dst]}: choose another dst")
        taken[spec.dst] = f"the [[files]] entry from {spec.src!r}"


def parse_template(name: str, text: str, folder: Path, programs_available: set[str] | None = None) -> Template:
    """Parse template TEXT (from FOLDER, for relative file paths) into a Template: every
    setting by its declaration (SETTINGS), then what takes several keys, then the checks
    across settings."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(name, f"not valid TOML: {exc}") from None
    _check_tables(name, raw)
    given = _given(name, raw)

    def get(field_name: str) -> Any:
        return given.get(field_name, default(field_name))

    _check_kernel(name, get("kernel"), get("kernel_entry"), "image" in raw)
    programs = _available(name, get("programs"), programs_available)
    files = _files(name, folder, raw.get("files", []))
    image = _image(name, raw.get("image"))
    image_init, units = _image_init(name, raw.get("image", {}), raw.get("init", {}), "profiled" in raw)
    packages = bool(get("host") or get("host_files") or get("debian"))
    _check_payload(name, get("payload"), programs, files, packages or bool(image))
    _check_root(name, get("root"), get("root_format"), get("root_writable"))
    channel = _profiled_channel(name, raw)
    if channel and "profiled" not in programs:
        programs = (*programs, "profiled")
    _check_collisions(name, files, programs)
    network = "network" in raw
    forwards = _network(name, raw.get("network", {}))
    probes = _with_unit_probes(name, _probes(name, raw.get("probes", {})), units)
    ready, forwards = _service(name, raw.get("service", {}), network=network, forwards=forwards,
                               payload=("/sbin/init",) if image_init else get("payload"), shell=get("shell"),
                               probes=probes)
    arch = get("arch")
    machine = given.get("machine", machines_of(arch)[0])
    initrd = _image_initrd(name, raw.get("image", {}))
    return with_needed_fragments(check_combined(Template(**{
        **given, "name": name, "arch": arch, "machine": machine, "programs": programs, "files": files,
        "mounts": () if image_init else get("mounts"), "probes": probes, "network": network, "forwards": forwards,
        "ready": ready, "image": image, "image_init": image_init, "image_units": units, "image_initrd": initrd,
        "profiled": channel,
        "folder": str(folder)})))


def _check_kernel(name: str, kernel: Kernel, entry: KernelEntry, image: bool) -> None:
    if kernel is Kernel.IMAGE and not image:
        raise _fail(name, "kernel = 'image' boots the kernel the template's [image] carries: give [image] "
                          "(rootfs, oci or docker-archive), or kernel = 'debian'")
    if entry is KernelEntry.PVH and kernel is not Kernel.DEBIAN:
        raise _fail(name, "kernel_entry = 'pvh' is for the Debian kernel (the minimal one: kernel_compression = 'none')")


def _available(name: str, programs: tuple[str, ...], available: set[str] | None) -> tuple[str, ...]:
    """[programs] build: each one must have a source in recipes/programs/."""
    if available is None:
        return programs
    for program in programs:
        if program not in available:
            raise _fail(name, f"program {program!r} has no source in recipes/programs/")
    return programs


def _check_root(name: str, root: RootDisk, root_format: RootFormat, writable: bool) -> None:
    if writable and root_format is not RootFormat.EROFS:
        raise _fail(name, '[rootfs] writable = "tmpfs" is for a read-only root: format = "erofs" (ext4 is writable)')
    if (root_format is RootFormat.EROFS or writable) and root is RootDisk.NONE:
        raise _fail(name, '[rootfs] format and writable describe a root disk: set disk = "virtio-blk" or "pmem"')


def _profiled_channel(name: str, raw: dict[str, Any]) -> ProfiledChannel:
    """[profiled]: its channel when the table is there (and not enabled = false)."""
    profiled = raw.get("profiled", {})
    channel = profiled.get("channel", "serial") if profiled.get("enabled", "profiled" in raw) else ""
    if channel and channel not in PROFILED_DEVICES:
        raise _fail(name, f"[profiled] channel = {channel!r} is not one of: {', '.join(PROFILED_DEVICES)}")
    return ProfiledChannel(channel)


# The folders the build itself writes under BUILD_DIR beside the bundles: a template of
# one of these names would build into them (and break every other bundle).
RESERVED_NAMES = frozenset({"programs", "programs-aarch64", "facts", "contents", "firmware", "release", "results"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def load_template(path: Path, programs_available: set[str] | None = None) -> Template:
    if not path.is_file():
        raise TemplateError(f"template {path} does not exist")
    name = path.stem
    if not _NAME.fullmatch(name):
        raise TemplateError(f"template {path}: its name {name!r} must be letters, digits, '.', '_' and '-' "
                            "(it names the bundle's folder)")
    if name in RESERVED_NAMES:
        raise TemplateError(f"template {path}: {name!r} is a folder the build itself uses under BUILD_DIR "
                            f"({', '.join(sorted(RESERVED_NAMES))}): rename the template")
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template {path} is not UTF-8 text (byte {exc.start}): a template is TOML") from None
    return parse_template(name, text, path.parent, programs_available)


def find_template(name_or_path: str, templates_dir: Path) -> Path:
    """Resolve a template given by name ("benchmark") or by path to a .toml file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        return candidate
    path = templates_dir / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in templates_dir.glob("*.toml")))
        raise TemplateError(f"no template named {name_or_path!r} in {templates_dir} (known: {known})")
    return path


def with_needed_fragments(template: Template) -> Template:
    """TEMPLATE with the minimal kernel's fragments that its other settings need:
    `network` for [network], `erofs` for an EROFS root (no change on another kernel)."""
    if template.kernel is not Kernel.MINIMAL:
        return template
    needed = (("network", template.network), ("erofs", template.root_format is RootFormat.EROFS))
    extra = tuple(name for name, wanted in needed if wanted and name not in template.kernel_fragments)
    return replace(template, kernel_fragments=(*template.kernel_fragments, *extra)) if extra else template


def retarget(template: Template, arch: str, machine: Machine | None = None) -> Template:
    """TEMPLATE for another architecture (its machine: MACHINE, else the architecture's
    first) or machine, checked as the template itself would be (ARCH= and MACHINE=)."""
    target = _choice(template.name, Arch, "ARCH", arch)
    if machine is None:
        machine = template.machine if shape(template.machine).arch is target else machines_of(target)[0]
    return check_combined(replace(template, arch=target, machine=machine))


def with_loader(template: Template, loader: str) -> Template:
    """TEMPLATE started by another boot loader (LOADER=), checked as the template itself would be."""
    return check_combined(replace(template, loader=_choice(template.name, Loader, "LOADER", loader)))

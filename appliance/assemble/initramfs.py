"""What goes into an appliance: the initramfs and, with a root disk, the disk's tree.

Pure: it turns a Template, the built programs, the prepared module files and the
[packages] entries into one tree (layout.merge: every file with its source). Without a
root disk everything is in the initramfs. With one, the initramfs keeps only the init,
its config and the modules needed to reach the disk; programs, packages, files and
mount points go on the disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance import netspec
from appliance.assemble import cpio, layout, pieces
from appliance.assemble.layout import Placed
from appliance.assemble.modfiles import ModuleFile
from appliance.assemble.template import PROFILED_DEVICES, RootDisk, Template
from appliance.errors import TemplateError
from appliance.machines import Arch

CONSOLE = cpio.device("dev/console", "c", 5, 1, 0o600)
# aarch64's probes write an MMIO register through /dev/mem, from init's first instruction
# on: before the init mounts devtmpfs, so the node is in the archive itself.
MEM = cpio.device("dev/mem", "c", 1, 1, 0o600)
ROOT_DEVICE = {RootDisk.VIRTIO_BLK: "/dev/vda", RootDisk.PMEM: "/dev/pmem0"}


@dataclass(frozen=True)
class Contents:
    initrd: list[Placed]
    disk: list[Placed] | None  # None: no root disk

    def provenance(self) -> list[dict[str, object]]:
        """Every file and link with where it lands, where it came from and its size."""
        parts = [("initrd", self.initrd), ("rootfs", self.disk or [])]
        return [{"path": "/" + p.entry.path, "in": where, "source": p.source, "kind": p.entry.kind,
                 "bytes": len(p.entry.data) if p.entry.kind == "file" else 0}
                for where, tree in parts for p in tree if p.entry.kind in ("file", "symlink")]


# Bytes an argument carries as they are in init.conf; every other byte is %XX, which the
# init decodes (recipes/programs/init.c: decode), so spaces, tabs, newlines, quotes and
# non-ASCII reach execv() exactly.
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._,:=+-@")


def encode_word(word: str) -> str:
    """WORD (an argument of the payload or the shell) as one space-free init.conf word."""
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in word.encode())


def decode_word(word: str) -> str:
    """encode_word's inverse, as the init does it (for tests and `inspect`)."""
    out, i, raw = bytearray(), 0, word.encode()
    while i < len(raw):
        if raw[i] == ord("%") and i + 3 <= len(raw):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


def module_dir(release: str, template: Template | None = None) -> str:
    """Where our initramfs holds the modules; under appliance/ when it is appended to the
    image's initrd, whose lib is a symlink (merged /usr): a directory of ours there would
    replace the link as the kernel unpacks, and the initrd's programs lose their libraries."""
    return f"appliance/lib/modules/{release}" if template is not None and template.image_initrd else \
        f"lib/modules/{release}"


# What the init can carry (recipes/programs/init.c: MAX_WORDS, MAX_ENV, its conf buffer):
# more is refused here, never cut short there.
INIT_MAX_WORDS = 255  # words of a payload or shell line after its keyword
INIT_MAX_ENV = 256
INIT_MAX_CONF = 65535
MAX_ID = 0xFFFFFFFE  # the largest UID or GID (0xffffffff is -1: "no change")


def check_user(user: str, what: str) -> None:
    """USER must be UID or UID:GID, each a number up to MAX_ID: one line if not (an id
    past 2^32 wrapped to 0, root, before this check)."""
    parts = user.split(":")
    if len(parts) > 2 or not all(p.isdigit() and p.isascii() for p in parts) or any(int(p) > MAX_ID for p in parts):
        raise TemplateError(f"{what}: user {user!r} is not UID or UID:GID with ids from 0 to {MAX_ID}")


def init_conf(template: Template, modules: Sequence[ModuleFile] = (), release: str = "") -> str:
    """The init's configuration file (format documented in recipes/programs/init.c),
    refused in one line where it holds more than the init carries."""
    for name, words in (("payload", template.payload), ("shell", template.shell)):
        if len(words) > INIT_MAX_WORDS:
            raise TemplateError(f"the {name} has {len(words)} words; the init carries at most {INIT_MAX_WORDS}")
    if len(template.env) > INIT_MAX_ENV:
        raise TemplateError(f"the payload's environment has {len(template.env)} variables; the init carries at most "
                            f"{INIT_MAX_ENV}")
    if template.user:
        check_user(template.user, "the payload")
    text = _init_lines(template, modules, release)
    if len(text.encode()) > INIT_MAX_CONF:
        raise TemplateError(f"the init's configuration is {len(text.encode())} bytes; it reads at most {INIT_MAX_CONF}")
    return text


def _init_lines(template: Template, modules: Sequence[ModuleFile], release: str) -> str:
    lines = [f"module /{module_dir(release, template)}/{m.path} {m.name}" for m in modules]
    if modules:
        lines.append(f"modules_on_error {template.modules_on_error}")
    if template.root is not RootDisk.NONE and not template.image_initrd:  # the image's initrd mounts it
        dax = " dax" if template.root is RootDisk.PMEM else ""
        overlay = " overlay" if template.root_writable else ""
        lines.append(f"root {ROOT_DEVICE[template.root]} {template.root_format.value}{dax}{overlay}")
    lines += [f"mount {m.value} {m.target}" for m in template.mounts]
    if template.profiled:
        lines.append(f"profiled {PROFILED_DEVICES[template.profiled]} {template.profiled_sample_ms}")
    if template.network:  # with its stop channel: the runner ends a service, or --serve, through it
        lines.append(f"net {netspec.INTERFACE} {netspec.GUEST_ADDRESS} {netspec.NETMASK} {netspec.GATEWAY}")
        if not template.image_init:  # the image's init ends its own boot (docs/TEMPLATES.md)
            lines.append(f"control {netspec.CONTROL_PORT}")
    if template.image_init:
        lines.append(f"exec_init {IMAGE_INITRD_INIT if template.image_initrd else IMAGE_INIT}")
    if template.payload:
        lines.append("payload " + " ".join(encode_word(w) for w in template.payload))
    lines += [f"env {encode_word(pair)}" for pair in template.env]
    if template.workdir:
        lines.append(f"workdir {encode_word(template.workdir)}")
    if template.user:
        lines.append(f"user {template.user}")
    if template.shell:
        lines.append("shell " + " ".join(encode_word(w) for w in template.shell))
    lines.append(f"after {template.after.value}")
    return "\n".join(lines) + "\n"


def _userland(template: Template, programs: dict[str, bytes]) -> list[Placed]:
    out = [Placed(cpio.directory(m.target.lstrip("/")), "init") for m in template.mounts if m.target != "/dev"]
    out += [Placed(cpio.file(f"bin/{name}", programs[name], 0o755), f"program {name}") for name in template.programs]
    if template.network:  # QEMU's user network answers DNS at this address
        out.append(Placed(cpio.file("etc/resolv.conf", f"nameserver {netspec.DNS}\n".encode()), "network"))
    folder = Path(template.folder)
    out += [Placed(cpio.file(f.dst, (folder / f.src).read_bytes(), f.mode), f"template {f.src}") for f in template.files]
    return out


IMAGE_INIT = "/sbin/init"  # what [image] init = "image" execs
# [image] initrd = "image": our init is appended to the image's initrd beside its /init,
# which it execs (the kernel runs ours first: rdinit=, manifest.cmdline)
IMAGE_INITRD_INIT = "/init"
WRAPPER_INIT = "appliance/init"


def init_path(template: Template) -> str:
    """Where our init lies in the initramfs."""
    return WRAPPER_INIT if template.image_initrd else "init"

CONF_MAX = 16383  # the init reads init.conf into a buffer of this many bytes (init.c: conf)


def _conf_bytes(template: Template, modules: Sequence[ModuleFile], release: str) -> bytes:
    data = init_conf(template, modules, release).encode()
    if len(data) > CONF_MAX:
        raise layout.LayoutError(f"template {template.name}: the init's configuration would be {len(data)} bytes, "
                                 f"more than the {CONF_MAX} it reads (long payload arguments, many modules?): "
                                 "put long arguments in a file of the appliance")
    return data


def _check_runnable(template: Template, tree: list[Placed]) -> None:
    """The payload and the shell must be executable files of the finished tree (with
    [packages] they may come from a package, so only now can this be known)."""
    for key, argv in (("payload", template.payload), ("shell", template.shell)):
        if argv:
            found = layout.lookup(tree, argv[0])
            if found is None or not found.entry.mode & 0o111:
                raise layout.LayoutError(f"template {template.name}: [init] {key} {argv[0]!r} is not an executable "
                                         "file of the appliance: add the program or package that provides it")


def kernel_needs(template: Template, parts: Contents) -> list[tuple[str, str]]:
    """(CONFIG_ symbol, why) the kernel must have to start the payload and the shell as
    the image holds them: a `#!` script needs BINFMT_SCRIPT (and its interpreter in the
    image), a 32-bit ELF on x86_64 needs IA32_EMULATION, any ELF needs BINFMT_ELF."""
    tree = parts.disk if parts.disk is not None else parts.initrd
    needs: list[tuple[str, str]] = []
    for key, argv in (("payload", template.payload), ("shell", template.shell)):
        found = layout.lookup(tree, argv[0]) if argv else None
        if found is None:
            continue
        data = found.entry.data
        what = f"[init] {key} {argv[0]}"
        if data.startswith(b"#!"):
            needs.append(("BINFMT_SCRIPT", f"{what} is a #! script"))
            interpreter = data[2:].split(b"\n", 1)[0].strip().split(b" ", 1)[0].decode(errors="replace")
            if layout.lookup(tree, interpreter) is None:
                raise layout.LayoutError(f"template {template.name}: {what} is a script for {interpreter}, which the "
                                         "appliance does not have: add the program or package that provides it")
        elif data.startswith(b"\x7fELF"):
            needs.append(("BINFMT_ELF", f"{what} is an ELF program"))
            if data[4] == 1 and template.arch is Arch.X86_64:
                needs.append(("IA32_EMULATION", f"{what} is a 32-bit ELF program"))
    return needs


def contents(template: Template, init: bytes, programs: dict[str, bytes], modules: Sequence[ModuleFile] = (),
             release: str = "", packages: Sequence[Placed] = ()) -> Contents:
    boot = [
        Placed(cpio.file(init_path(template), init, 0o755), "init"),
        Placed(CONSOLE, "init"),
        *([Placed(MEM, "init")] if template.arch is Arch.AARCH64 else []),
        Placed(cpio.file("etc/appliance/init.conf", _conf_bytes(template, modules, release)), "init"),
    ]
    boot += [Placed(cpio.file(f"{module_dir(release, template)}/{m.path}", m.data), f"kernel module {m.name}")
             for m in modules]
    user = [*_userland(template, programs), *packages]
    where = f"template {template.name}: "
    if template.root is RootDisk.NONE:
        tree = layout.merge(boot + user, where)
        _check_runnable(template, tree)
        return Contents(tree, None)
    disk = layout.merge([Placed(cpio.directory("dev"), "init"), *user], where)
    _check_runnable(template, disk)
    return Contents(layout.merge([*boot, Placed(cpio.directory("newroot"), "init")], where), disk)


@dataclass(frozen=True)
class Built:
    """An initramfs as built: its bytes (concatenated compressed pieces), the size the
    kernel unpacks, the contents (the disk's too), and each piece."""

    data: bytes
    raw_size: int
    parts: Contents
    pieces: list[pieces.Piece]


def build(template: Template, init: bytes, programs: dict[str, bytes], source_date_epoch: int, *,
          modules: Sequence[ModuleFile] = (), release: str = "", packages: Sequence[Placed] = (),
          cache: Path | None = None) -> Built:
    """The initramfs of TEMPLATE, its pieces compressed now or taken from CACHE."""
    parts = contents(template, init, programs, modules, release, packages)
    data, raw_size, made = pieces.archive(parts.initrd, source_date_epoch, template.compression,
                                          template.compression_level, cache)
    return Built(data, raw_size, parts, made)

"""Kernel acquisition: the pinned Debian kernel package, or the user's own bzImage.

The Debian package is fetched with `apt-get download`, checked against the lock file's
sha256 and unpacked with `dpkg-deb -x` into the cache (no install, no root needed).
An unpacked tree is only used when its marker names the same digest, and is moved into
place in one rename, so an interrupted fetch never leaves a half tree that looks whole.
The tree is sealed (fsutil.seal: every file's sha256) when it is unpacked; the image is
checked against the seal on every use and a module when the build reads it, so a cache
file truncated or edited later is caught, and the tree fetched anew.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appliance import proc
from appliance.errors import KernelError, ToolFailed
from appliance.fsutil import atomic_write, locked, seal, sealed, sha256_file, unsealed_change
from appliance.machines import Arch
from appliance.paths import ROOT

MARKER = ".appliance-complete"
LOCK = ROOT / "recipes" / "kernel" / "debian.lock"  # Debian's amd64 kernel
ARM64_LOCK = ROOT / "recipes" / "kernel" / "debian-arm64.lock"  # Debian's arm64 kernel, for aarch64 templates


def lock_for(arch: Arch) -> Path:
    """The lock file pinning Debian's kernel for ARCH."""
    return ARM64_LOCK if arch is Arch.AARCH64 else LOCK


@dataclass(frozen=True)
class KernelLock:
    package: str
    version: str
    release: str
    deb_sha256: str
    arch: str = "amd64"  # Debian's architecture name: a foreign one is fetched through multiarch


@dataclass(frozen=True)
class KernelFiles:
    image: Path  # bzImage
    modules: Path | None  # lib/modules/<release>, when known
    release: str
    sealed_root: Path | None = None  # a cached tree whose files are checked against their digests


def cache_dir() -> Path:
    if "APPLIANCE_CACHE" in os.environ:
        return Path(os.environ["APPLIANCE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "appliance"


def lock_fields(path: Path, keys: tuple[str, ...], what: str = "kernel lock file",
                optional: dict[str, str] | None = None) -> list[str]:
    """The values of KEYS in the TOML lock file PATH (those in OPTIONAL may be missing:
    their default then), or one KernelError line."""
    defaults = optional or {}
    try:
        raw = tomllib.loads(path.read_text())
        return [str(raw[key] if key in raw or key not in defaults else defaults[key]) for key in keys]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise KernelError(f"{what} {path} is unreadable ({exc}): restore it from git") from None


def read_lock(path: Path) -> KernelLock:
    return KernelLock(*lock_fields(path, ("package", "version", "release", "deb_sha256", "arch"),
                                   optional={"arch": "amd64"}))


def write_lock(path: Path, lock: KernelLock) -> None:
    header = "\n".join(path.read_text().splitlines()[:2]) + "\n" if path.exists() else ""
    keys = ("package", "version", "release", "deb_sha256") + (("arch",) if lock.arch != "amd64" else ())
    body = "".join(f'{key} = "{getattr(lock, key)}"\n' for key in keys)
    atomic_write(path, (header + body).encode())


def download_deb(package: str, version: str, sha256: str, workdir: Path, relock: str, arch: str = "") -> Path:
    """`apt-get download` PACKAGE=VERSION (of Debian architecture ARCH, if given) into
    WORKDIR and check its digest; RELOCK says how the user accepts a changed package."""
    name = f"{package}:{arch}" if arch else package
    try:
        proc.run(["apt-get", "download", f"{name}={version}"], cwd=workdir, timeout=900)
    except ToolFailed as exc:
        foreign = (f"; {arch} packages need `dpkg --add-architecture {arch}` and `apt-get update` "
                   "(./setup does both)") if arch else ""
        said = (exc.stderr.strip().splitlines() or ["no output"])[-1]
        gone = "Can't find a source" in exc.stderr or "not found" in said or "Unable to locate" in exc.stderr
        why = (f"apt no longer offers {name}={version} (a newer upload superseded it?)" if gone
               else f"apt-get could not download {name}={version} ({said})")
        raise KernelError(f"{why}: run `apt-get update`, or {relock}{foreign}") from None
    debs = list(workdir.glob("*.deb"))
    if len(debs) != 1:
        raise KernelError(f"apt-get download of {package} produced {len(debs)} files, expected one")
    digest = sha256_file(debs[0])
    if digest != sha256:
        raise KernelError(
            f"{debs[0].name} has sha256 {digest}, but the lock file pins {sha256}: "
            f"the package changed upstream; check it and {relock}"
        )
    return debs[0]


def fetch_debian(lock: KernelLock, cache: Path | None = None) -> KernelFiles:
    """Return the unpacked, verified kernel of LOCK, downloading it if needed."""
    root = (cache or cache_dir()) / "kernels" / f"{lock.package}_{lock.version}"
    if not _complete(root, lock):
        with locked(root.with_name(f".{root.name}.lock"), f"another build is fetching {lock.package}"):
            _fetch_into(root, lock)
    image = root / "boot" / f"vmlinuz-{lock.release}"
    if not image.is_file():
        raise KernelError(f"{lock.package} has no boot/vmlinuz-{lock.release}: is `release` in the lock file right?")
    return KernelFiles(image, root / "lib" / "modules" / lock.release, lock.release, root)


def _fetch_into(root: Path, lock: KernelLock) -> None:
    """LOCK's package downloaded, checked, unpacked, depmod'ed and sealed as ROOT (unless
    another build did it while we waited for the lock)."""
    if not _complete(root, lock):
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root.parent, prefix=".fetch-") as tmp:
            work = Path(tmp)
            deb = download_deb(lock.package, lock.version, lock.deb_sha256, work,
                               f"pin one apt offers in {lock_for(Arch.AARCH64 if lock.arch == 'arm64' else Arch.X86_64)} "
                               "with `appliance kernel-lock`",
                               lock.arch if lock.arch != "amd64" else "")
            tree = work / "tree"
            proc.run(["dpkg-deb", "-x", str(deb), str(tree)], timeout=600)
            _depmod(tree, lock.release)
            seal(tree)
            (tree / MARKER).write_text(lock.deb_sha256 + "\n")
            shutil.rmtree(root, ignore_errors=True)
            os.rename(tree, root)


def _depmod(root: Path, release: str) -> None:
    """Debian's package ships no modules.dep/alias/softdep: depmod writes them at install."""
    proc.run(["depmod", "-b", str(root), release], timeout=300)


def _complete(root: Path, lock: KernelLock) -> bool:
    """Whether ROOT is the whole, unchanged tree of LOCK's package (else: fetch again)."""
    marker = root / MARKER
    if not marker.is_file() or marker.read_text().strip() != lock.deb_sha256:
        return False
    if not sealed(root):
        return False  # unpacked before trees were sealed: its files cannot be vouched for
    why = unsealed_change(root, root / "boot" / f"vmlinuz-{lock.release}")
    if why is not None:
        print(f"  note: cached kernel {root.name} is damaged ({why}): fetching it again", file=sys.stderr)
        return False
    return True


def check_cached(files: KernelFiles, path: Path) -> None:
    """Raise if PATH, a file of a cached kernel tree, changed since it was unpacked; the
    tree is then marked incomplete, so the next build fetches it anew."""
    if files.sealed_root is None:
        return
    why = unsealed_change(files.sealed_root, path)
    if why is not None:
        (files.sealed_root / MARKER).unlink(missing_ok=True)
        raise KernelError(f"cached kernel {files.sealed_root.name}: {why}; it was discarded: build again to fetch it anew")


def own_kernel(image: Path, modules: Path | None = None) -> KernelFiles:
    """A user-supplied kernel (KERNEL=...), with its version read from its header."""
    if image.is_dir():
        raise KernelError(f"KERNEL={image} is a directory: give the kernel image file (e.g. arch/x86/boot/bzImage)")
    if not image.is_file():
        raise KernelError(f"KERNEL={image} does not exist")
    head = image.read_bytes()[:65536]
    problem = image_problem(head, image.stat().st_size)
    if problem:
        advice = "copy the image again" if image_kind(head) else "give arch/x86/boot/bzImage or vmlinux"
        raise KernelError(f"KERNEL={image} is {problem}; {advice}")
    return KernelFiles(image, modules, bzimage_version(head) or "unknown")


def image_problem(head: bytes, size: int) -> str | None:
    """Why a kernel image of SIZE bytes whose first bytes are HEAD cannot boot, or None:
    it is no kernel image at all, or it is cut short."""
    if image_kind(head) is None:
        return "not a kernel image (no bzImage setup header, not an ELF vmlinux)"
    short = truncated(head, size)
    return f"cut short: {short}" if short else None


def truncated(head: bytes, size: int) -> str | None:
    """Why a kernel image of SIZE bytes whose first bytes are HEAD is incomplete, or None:
    a bzImage shorter than its setup header's setup + protected-mode sizes, an ELF
    shorter than the segments its program headers place."""
    if image_kind(head) == "bzImage":
        setup_sects = head[0x1F1] or 4
        syssize = int.from_bytes(head[0x1F4:0x1F8], "little")  # 16-byte paragraphs
        expected = (setup_sects + 1) * 512 + syssize * 16
        return f"{size} bytes, its setup header says {expected}" if size < expected else None
    if image_kind(head) == "elf" and len(head) >= 64 and head[4] == 2:  # ELF64
        phoff = int.from_bytes(head[0x20:0x28], "little")
        phentsize, phnum = int.from_bytes(head[0x36:0x38], "little"), int.from_bytes(head[0x38:0x3A], "little")
        ends = []
        for i in range(phnum):
            entry = head[phoff + i * phentsize: phoff + (i + 1) * phentsize]
            if len(entry) < 0x28:
                return f"{size} bytes, its program headers lie past the first {len(head)}"
            ends.append(int.from_bytes(entry[0x08:0x10], "little") + int.from_bytes(entry[0x20:0x28], "little"))
        needed = max(ends, default=0)
        return f"{size} bytes, its segments end at {needed}" if size < needed else None
    return None


def image_kind(head: bytes) -> str | None:
    """"bzImage" or "elf" (a vmlinux, booted through its PVH note) from a kernel's first
    bytes, or None for anything else."""
    if len(head) >= 0x210 and head[0x202:0x206] == b"HdrS" and head[0x1FE:0x200] == b"\x55\xaa":
        return "bzImage"
    if head[:4] == b"\x7fELF":
        return "elf"
    return None


def bzimage_version(head: bytes) -> str | None:
    """The version string of a bzImage, from its setup header (boot protocol >= 2.00)."""
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    text = head[offset:offset + 256].split(b"\0", 1)[0].decode(errors="replace")
    return text.split(" ", 1)[0] or None


def _decompress(payload: bytes) -> bytes | None:
    """A bzImage's payload, by its magic: xz, gzip, zstd, bzip2 or lzma."""
    import bz2
    import gzip
    import lzma

    if payload.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=io.BytesIO(payload)).read()
    if payload.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    if payload.startswith(b"BZh"):
        return bz2.decompress(payload)
    if payload.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    return None


PVH_NOTE = 18  # XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry QEMU's PVH boot jumps to


def has_pvh_note(elf: bytes) -> bool:
    """Whether an ELF64 kernel has the PVH entry note (in any PT_NOTE segment)."""
    if elf[:5] != b"\x7fELF\x02":
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        kind, _, offset, _, _, size = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if kind != 4:  # PT_NOTE
            continue
        at, end = offset, offset + size
        while at + 12 <= end:
            namesz, descsz, note = struct.unpack_from("<III", elf, at)
            if note == PVH_NOTE and elf[at + 12:at + 12 + namesz].rstrip(b"\0") == b"Xen":
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def pvh_vmlinux(bzimage: bytes) -> bytes:
    """The kernel inside a bzImage, decompressed ahead of time, for a PVH boot that skips
    the decompressor (under TCG most of a distro kernel's early seconds). Raises
    KernelError when the image is not a bzImage or its kernel has no PVH entry."""
    if image_kind(bzimage[:0x1000]) != "bzImage":
        raise KernelError("not a bzImage: only a compressed kernel can be decompressed ahead of time")
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = ((bzimage[0x1F1] or 4) + 1) * 512 + offset
    try:
        vmlinux = _decompress(bzimage[start:start + length])
    except (OSError, EOFError, ValueError) as exc:
        raise KernelError(f"the bzImage's payload does not decompress ({exc})") from None
    if vmlinux is None:
        raise KernelError(f"the bzImage's payload has an unknown compression ({bzimage[start:start + 4].hex()})")
    if not has_pvh_note(vmlinux):
        raise KernelError("the kernel has no PVH entry note (CONFIG_PVH): it cannot boot without its decompressor")
    return vmlinux


_IMAGE_NAME = re.compile(r"^(linux-image-6\.1\.0-(\d+)-amd64)\s")


def newest_available() -> KernelLock:
    """The newest linux-image-6.1.0-N-amd64 apt offers, for `appliance kernel-lock`."""
    found = proc.run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"]).stdout
    names = sorted(((int(m[2]), m[1]) for m in map(_IMAGE_NAME.match, found.splitlines()) if m), reverse=True)
    if not names:
        raise KernelError("apt knows no linux-image-6.1.0-*-amd64 package: run `apt-get update` first")
    package = names[0][1]
    show = proc.run(["apt-cache", "show", package]).stdout.split("\n\n")[0]
    fields = dict(line.split(": ", 1) for line in show.splitlines() if ": " in line)
    return KernelLock(package, fields["Version"], package.removeprefix("linux-image-"), fields["SHA256"])

"""Release artifacts: a reproducible bundle.tar.zst, a bootable ISO, SHA256SUMS, and
their verification.

The archive is deterministic: entries sorted under one top directory named after the
bundle, owners 0/0 with no names, every mtime SOURCE_DATE_EPOCH, modes normalised, no
host path anywhere, zstd at a fixed level on one thread: two builds from the same
inputs give the same bytes. Unpacking refuses absolute paths, `..`, links and anything
but regular files and directories, so an archive can never write outside its target.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from appliance import bundle as bundles
from appliance.errors import BundleError
from appliance.fsutil import atomic_path, atomic_write, sha256_file

ZSTD_LEVEL = 19


def _info(name: str, size: int, mode: int, epoch: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = size, epoch, 0, 0, "", ""
    info.mode = 0o755 if directory or mode & 0o111 else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


def tar_bytes(folder: Path, top: str, epoch: int) -> bytes:
    """The bundle directory as a deterministic (uncompressed) tar."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        archive.addfile(_info(top, 0, 0o755, epoch, directory=True))
        for path in files:
            data = path.read_bytes()
            archive.addfile(_info(f"{top}/{path.name}", len(data), path.stat().st_mode, epoch), io.BytesIO(data))
    return out.getvalue()


def make_tar_zst(folder: Path, out: Path, epoch: int) -> None:
    import zstandard

    bundles.load(folder)  # release only an intact bundle
    raw = tar_bytes(folder, out.name.removesuffix(".tar.zst"), epoch)
    params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL, threads=0, write_checksum=True)
    atomic_write(out, zstandard.ZstdCompressor(compression_params=params).compress(raw))


def write_sha256sums(folder: Path, names: list[str]) -> None:
    lines = "".join(f"{sha256_file(folder / name)}  {name}\n" for name in sorted(names))
    atomic_write(folder / "SHA256SUMS", lines.encode())


def _safe_member(member: tarfile.TarInfo, top: str | None) -> str:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise BundleError(f"archive member {member.name!r} would escape the target directory")
    if not (member.isfile() or member.isdir()):
        raise BundleError(f"archive member {member.name!r} is a link or device: refused")
    if top is not None and path.parts[0] != top:
        raise BundleError(f"archive member {member.name!r} is outside the archive's top directory {top!r}")
    return str(path)


MAX_UNPACKED = 16 << 30  # a bundle with its largest root disk; more is a bomb or damage
MAX_MEMBERS = 10_000


def unpack_tar_zst(archive: Path, target: Path, limit: int = MAX_UNPACKED) -> Path:
    """Unpack ARCHIVE into TARGET safely, streaming (memory stays small whatever the
    archive expands to) and stopping at LIMIT bytes; return the bundle directory in it.
    Each member is checked before it is written, into a staging folder that becomes the
    bundle directory only when the whole archive was good: a bad one leaves nothing."""
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".unpacking-"))
    try:
        top = _stream_into(archive, staging, limit)
        os.rename(staging / top, target / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / top


SMALL_MEMBER = 1 << 20  # a file the manifest does not size (board.dtb before it, a stray) may be this big
MAX_MANIFEST = 64 << 20


def _stream_into(archive: Path, target: Path, limit: int) -> str:
    """Extract ARCHIVE into TARGET member by member, each checked first: inside the top
    directory, a plain file or folder, and of the size bundle.json gives it (bundle.json
    sorts before the kernel, the initrd and the disks, so what the manifest sizes is
    known before it is written; what it does not size may be SMALL_MEMBER at most), with
    room for it on TARGET's disk. A bomb is refused before it fills anything."""
    import zstandard

    top = None
    total = count = 0
    sizes: dict[str, int] | None = None
    try:
        with open(archive, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream, \
                tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                top = top or PurePosixPath(member.name).parts[0]
                _safe_member(member, top)
                total, count = total + member.size, count + 1
                if total > limit or count > MAX_MEMBERS:
                    raise BundleError(f"{archive} expands to more than {limit >> 30} GiB or {MAX_MEMBERS} files: "
                                      "refused (damaged, or not a bundle archive)")
                if member.isfile():
                    _check_size(archive, member, str(PurePosixPath(member.name).relative_to(top)), sizes, target)
                tar.extract(member, target, filter="data")
                if member.isfile() and PurePosixPath(member.name).relative_to(top) == PurePosixPath(bundles.MANIFEST):
                    sizes = _manifest_sizes(archive, target / member.name)
    except zstandard.ZstdError as exc:
        raise BundleError(f"{archive} is not a valid zstd archive ({exc}): it is truncated or damaged") from None
    except tarfile.TarError as exc:
        raise BundleError(f"{archive} is not a valid tar archive ({exc}): it is truncated or damaged") from None
    if top is None:
        raise BundleError(f"{archive} is empty")
    return top


def _check_size(archive: Path, member: tarfile.TarInfo, name: str, sizes: dict[str, int] | None, target: Path) -> None:
    expected = sizes.get(name) if sizes is not None else None
    if name == bundles.MANIFEST:
        if member.size > MAX_MANIFEST:
            raise BundleError(f"{archive}: its bundle.json is {member.size} bytes: refused (damaged, or not a bundle)")
    elif expected is None and member.size > SMALL_MEMBER:
        where = "before its bundle.json" if sizes is None else "and is not in its bundle.json"
        raise BundleError(f"{archive}: {name} is {member.size} bytes {where}: refused (damaged, or not a bundle)")
    elif expected is not None and member.size != expected:
        raise BundleError(f"{archive}: {name} is {member.size} bytes, its bundle.json says {expected}: refused "
                          "(damaged or tampered)")
    free = shutil.disk_usage(target).free
    if member.size > free:
        raise BundleError(f"{archive}: {name} needs {member.size} bytes and {target} has {free} free: free space "
                          f"there, or set TMPDIR to a bigger disk")


def _manifest_sizes(archive: Path, path: Path) -> dict[str, int]:
    """Each file's size as the archive's bundle.json gives it."""
    try:
        files = json.loads(path.read_bytes())["files"]
        return {str(name): int(entry["size"]) for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BundleError(f"{archive}: its bundle.json has no readable file list: refused (damaged)") from None


def verify(artifact: Path) -> list[str]:
    """Problems with a bundle directory or a bundle.tar.zst (empty when all is well)."""
    def check(target: bundles.Bundle) -> list[str]:
        return bundles.problems(target) + [f"{name} is not in bundle.json (foreign file)"
                                           for name in bundles.strays(target)]

    if artifact.is_dir():
        return check(bundles.load(artifact, verify=False))
    with tempfile.TemporaryDirectory(prefix="appliance-verify-") as tmp:
        return check(bundles.load(unpack_any(artifact, Path(tmp)), verify=False))


def verify_sums(folder: Path) -> list[str]:
    """Check SHA256SUMS in FOLDER against the files it names."""
    problems = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name} does not match SHA256SUMS")
    return problems


def make_qcow2(folder: Path, out: Path) -> None:
    """The bundle's root disk as a qcow2 image (smaller to ship than the raw one)."""
    from appliance import proc

    target = bundles.load(folder)
    if not target.disks:
        raise BundleError(f"bundle {folder} has no root disk to release as an image")
    with atomic_path(out) as tmp:
        proc.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(folder / target.disks[0]["file"]),
                  str(tmp)])


def unpack_any(artifact: Path, workdir: Path) -> Path:
    """The bundle directory inside any artifact (a directory is its own)."""
    if artifact.is_dir():
        return artifact
    if artifact.name.endswith(".iso"):
        return unpack_iso(artifact, workdir)
    if artifact.name.endswith(".tar.zst"):
        return unpack_tar_zst(artifact, workdir)
    raise BundleError(f"{artifact} is neither a bundle directory, a .tar.zst nor an .iso")


ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")  # Debian's isolinux package
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")  # syslinux-common


def isolinux_cfg(cmdline: str) -> bytes:
    return (f"DEFAULT appliance\nPROMPT 0\nTIMEOUT 0\nLABEL appliance\n  KERNEL /kernel\n  INITRD /initrd\n"
            f"  APPEND {cmdline}\n").encode()


def make_iso(folder: Path, out: Path) -> None:
    """A BIOS-bootable ISO (El Torito, isolinux with its boot info table) holding the
    bundle's files and bundle.json under readable Rock Ridge and Joliet names."""
    import pycdlib

    from appliance.machines import Machine

    target = bundles.load(folder)
    with open(target.kernel, "rb") as image:
        is_bzimage = image.read(0x206)[0x202:] == b"HdrS"
    if not is_bzimage:
        raise BundleError("an ISO boots through isolinux, which needs a bzImage, but this bundle's kernel is a "
                          "vmlinux (KERNEL_COMPRESSION=none): build it with KERNEL_COMPRESSION=zstd for a release")
    for needed, package in ((ISOLINUX_BIN, "isolinux"), (LDLINUX_C32, "syslinux-common")):
        if not needed.is_file():
            raise BundleError(f"{needed} not found: install it with `apt-get install {package}`")
    cmdline = target.cmdline_on(Machine.PC_SEABIOS)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="APPLIANCE")

    def add(data: bytes, name: str) -> None:
        iso_name = "/" + name.upper().replace("-", "_") + ";1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path=f"/{name}")

    add(ISOLINUX_BIN.read_bytes(), "isolinux.bin")
    add(LDLINUX_C32.read_bytes(), "ldlinux.c32")
    add(isolinux_cfg(cmdline), "isolinux.cfg")
    for name in sorted(target.files) + [bundles.MANIFEST]:
        add((folder / name).read_bytes(), name)
    iso.add_eltorito("/ISOLINUX.BIN;1", bootcatfile="/BOOT.CAT;1", boot_load_size=4, boot_info_table=True)
    with atomic_path(out) as tmp:
        iso.write(str(tmp))
    iso.close()


def load_iso(image: Path, workdir: Path) -> bundles.Bundle:
    """A verified bundle from an ISO, set to boot from the ISO itself on pc-seabios."""
    from appliance.machines import Machine

    folder = bundles.load(unpack_iso(image, workdir))
    return bundles.Bundle(folder.path, folder.manifest, image.resolve()).with_machine(Machine.PC_SEABIOS)


def unpack_iso(image: Path, target: Path) -> Path:
    """The bundle files of an ISO (by their Rock Ridge names) into TARGET."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(image))
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise BundleError(f"{image} is not a readable ISO ({exc})") from None
    try:
        names = [child.rock_ridge.name().decode() for child in iso.list_children(rr_path="/")
                 if child.rock_ridge is not None and child.is_file()]
        if bundles.MANIFEST not in names:
            raise BundleError(f"{image} holds no bundle.json: not an appliance ISO")
        for name in names:
            if "/" in name or name.startswith("."):
                raise BundleError(f"ISO member {name!r} would escape the target directory")
            if name.startswith(("isolinux", "ldlinux", "boot.cat")):
                continue
            with open(target / name, "wb") as out:
                iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
    finally:
        iso.close()
    return target

"""Bundles travel to workers by digest, and are checked on arrival.

A bundle is its folder (named by the sha256 of its bundle.json, which lists every file
with its sha256) plus what a run may boot instead of the folder's own files (a derived
kernel, a recompressed initrd, an ISO), each named by its own sha256. The client asks a
worker which of these it lacks and sends only those; the worker verifies each against
its digest and the manifest before it is renamed into the cache, so a cached digest is
always a whole, intact piece. The manifest itself travels with every block: a run may
boot the bundle as another machine or with other VM settings, which changes it in
memory only.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import bundle as bundles
from appliance.bundle import MANIFEST, Bundle
from appliance.errors import BundleError
from appliance.fsutil import sha256_file

log = logging.getLogger(__name__)
EXTRAS = ("kernel_file", "initrd_file", "cdrom")  # the Bundle fields that point outside its folder


@dataclass(frozen=True)
class BundleRef:
    """A bundle named by digests: what a block carries instead of paths."""

    digest: str  # sha256 of bundle.json: the folder's name in a worker's cache
    manifest: dict[str, Any]  # as the run boots it (machine, VM settings applied)
    extras: tuple[tuple[str, str], ...] = ()  # (Bundle field, sha256 of the file it points to)

    @property
    def pieces(self) -> list[str]:
        return [self.digest, *(sha for _, sha in self.extras)]


def ref_of(target: Bundle) -> tuple[BundleRef, dict[str, Path]]:
    """TARGET as a reference, and where each of its pieces lies here (digest -> path)."""
    where = {target.digest: target.path}
    extras = []
    for field in EXTRAS:
        path = getattr(target, field)
        if path is not None:
            sha = sha256_file(path)
            extras.append((field, sha))
            where[sha] = path
    return BundleRef(target.digest, target.manifest, tuple(extras)), where


def pack(path: Path) -> dict[str, bytes] | bytes:
    """A piece's bytes: a bundle folder as {name: bytes} (its manifest and listed files),
    any other file as its bytes."""
    if not path.is_dir():
        return path.read_bytes()
    listed = bundles.load(path, verify=False).manifest["files"]
    return {name: (path / name).read_bytes() for name in [MANIFEST, *listed]}


# The worker's side: its bundle cache ROOT (`appliance worker --cache`, fleet/state.py).


def missing(root: Path, digests: list[str]) -> list[str]:
    """The pieces among DIGESTS the cache ROOT does not hold."""
    return [d for d in digests if not (root / d).exists()]


def receive(root: Path, digest: str, payload: dict[str, bytes] | bytes) -> None:
    """Keep a piece sent by a client in the cache ROOT, after checking it is what its
    digest says."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / digest
    if final.exists():
        return
    with tempfile.TemporaryDirectory(dir=root, prefix=".arriving-") as tmp:
        landing = Path(tmp) / "piece"
        if isinstance(payload, bytes):
            if hashlib.sha256(payload).hexdigest() != digest:
                raise BundleError(f"a file sent as {digest[:12]} does not match that sha256: refused")
            landing.write_bytes(payload)
        else:
            _land_folder(digest, payload, landing)
        try:
            landing.rename(final)
        except OSError:
            if not final.exists():  # another block landed the same piece meanwhile: that one is as good
                raise


def _land_folder(digest: str, files: dict[str, bytes], landing: Path) -> None:
    manifest = files.get(MANIFEST)
    if manifest is None or hashlib.sha256(manifest).hexdigest() != digest:
        raise BundleError(f"a bundle sent as {digest[:12]} has a {MANIFEST} with another digest: refused")
    for name, data in files.items():
        if name != MANIFEST and bundles.bad_name(name):
            raise BundleError(f"a bundle sent as {digest[:12]} names a file {name!r}: refused")
        (landing / name).parent.mkdir(parents=True, exist_ok=True)
        (landing / name).write_bytes(data)
    try:
        bundles.load(landing)  # every listed file against its size and sha256 in the manifest
    except BundleError as exc:  # the landing folder goes with receive's temporary directory
        raise BundleError(f"a bundle sent as {digest[:12]} arrived damaged: {exc}") from None


class MissingPieces(BundleError):
    """A block reached a worker that does not hold its bundle yet (it joined late)."""


def materialize(root: Path, ref: BundleRef) -> Bundle:
    """The bundle REF names, from the worker's cache ROOT, each piece verified against its
    digest first (MissingPieces when it lacks some). A piece changed in the cache since it
    arrived (a replaced initrd) is thrown out and reported missing, so the client sends it
    again: a worker never boots one appliance and credits it to another's digest."""
    for digest in ref.pieces:
        if (root / digest).exists() and not _intact(root / digest, digest):
            log.warning("bundle piece %s in %s changed since it arrived: removed, to be sent again", digest[:12], root)
            _discard(root / digest)
    lacking = missing(root, ref.pieces)
    if lacking:
        raise MissingPieces(f"bundle piece(s) {', '.join(d[:12] for d in lacking)} are not in this worker's cache")
    fields = {field: root / sha for field, sha in ref.extras}
    return Bundle(root / ref.digest, ref.manifest, **fields)


def _intact(path: Path, digest: str) -> bool:
    """Whether the cached piece at PATH is still what DIGEST names: a file's sha256, or a
    bundle folder whose manifest has that sha256 and whose files match the manifest."""
    try:
        if not path.is_dir():
            return path.is_file() and not path.is_symlink() and sha256_file(path) == digest
        if hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest() != digest:
            return False
        bundles.load(path)  # every listed file against its size and sha256
        return True
    except (OSError, BundleError):
        return False


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

"""Images as a template's source: an OCI image layout, `docker save` output, or a root
filesystem tar (as mmdebstrap, debootstrap's --make-tarball or a distribution's rootfs
archive give: one layer, no config).

An OCI image layout is a folder (umoci's and skopeo's `DIR:TAG`): `oci-layout`,
`index.json` naming manifests (by the tag in `org.opencontainers.image.ref.name`), and
content-addressed blobs under `blobs/sha256/`. A manifest names the image's config and
its layers in order; an index (a manifest list) names one manifest per platform. A
docker archive is a tar with `manifest.json` (the config's and the layers' paths in the
archive) and the config, whose `rootfs.diff_ids` are the layers' digests.

Every blob is checked against its digest before it is used. Layers are applied in order
as the image spec says: a `.wh.NAME` entry deletes NAME from the layers below, a
`.wh..wh..opq` entry makes its directory opaque (nothing from below shows through), and
a later entry replaces an earlier one. A path that leaves the root, or that goes through
a symbolic link an earlier entry made, is refused: extracting it would write outside.
The result is placed entries (like a package's), each named by the layer that wrote it.
The image config gives the payload: Entrypoint and Cmd, Env, WorkingDir and User.

No registry is contacted: pulling stays with the user's tools (skopeo, podman).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import stat
import tarfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from appliance.assemble import compress, cpio
from appliance.assemble.initramfs import check_user
from appliance.assemble.layout import Placed
from appliance.assemble.template import Template
from appliance.errors import ApplianceError, TemplateError
from appliance.machines import Arch

INDEX_MEDIA = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME = "org.opencontainers.image.ref.name"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
GOARCH = {Arch.X86_64: "amd64", Arch.AARCH64: "arm64"}


class ImageError(TemplateError):
    """An image that cannot be used as it is: says which image and what in it."""


@dataclass(frozen=True)
class Layer:
    digest: str  # sha256:... of the blob as stored (compressed or not)
    data: bytes  # the blob


@dataclass(frozen=True)
class Image:
    name: str  # as the template gives it: for messages
    config: dict[str, Any]
    layers: tuple[Layer, ...]
    digest: str  # the manifest's (OCI) or the config's (docker archive): the image's identity


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(data: bytes, what: str, name: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageError(f"image {name}: {what} is not JSON ({exc})") from None


def _object(value: Any, what: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImageError(f"image {name}: {what} is a JSON {type(value).__name__}, not an object")
    return value


def _descriptors(doc: dict[str, Any], what: str, name: str, key: str = "manifests") -> list[dict[str, Any]]:
    """DOC's list of descriptors under KEY, each an object (one line where it is not)."""
    listed = doc.get(key, [])
    if not isinstance(listed, list) or not all(isinstance(d, dict) for d in listed):
        raise ImageError(f"image {name}: {what}'s {key} is not a list of descriptors (objects)")
    return listed


def _blob(folder: Path, digest: str, name: str, what: str) -> bytes:
    algorithm, _, value = str(digest).partition(":")
    if algorithm != "sha256" or len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise ImageError(f"image {name}: {what} has digest {digest!r}, not sha256:<64 hex digits>")
    path = folder / "blobs" / "sha256" / value
    if not path.is_file():
        raise ImageError(f"image {name}: {what} {digest[:19]} is missing from {folder / 'blobs' / 'sha256'}")
    data = path.read_bytes()
    if _sha256(data) != digest:
        raise ImageError(f"image {name}: {what} {digest[:19]} does not match its digest (the blob is damaged): "
                         "pull the image again")
    return data


def read_layout(folder: Path, tag: str, arch: Arch) -> Image:
    """The image TAG names in the OCI layout FOLDER, for ARCH's platform."""
    name = f"{folder}:{tag}"
    if not (folder / "index.json").is_file():
        raise ImageError(f"image {name}: {folder} is not an OCI image layout (no index.json)")
    index = _object(_json((folder / "index.json").read_bytes(), "index.json", name), "index.json", name)
    listed = _descriptors(index, "index.json", name)
    found = [m for m in listed if (m.get("annotations") or {}).get(REF_NAME) == tag]
    if not found:
        tags = sorted({str((m.get("annotations") or {}).get(REF_NAME, "?")) for m in listed})
        raise ImageError(f"image {name}: no manifest tagged {tag!r} (tags: {', '.join(tags) or 'none'})")
    descriptor = found[0]
    if descriptor.get("mediaType") in INDEX_MEDIA:
        descriptor = _platform(folder, descriptor, arch, name)
    manifest_bytes = _blob(folder, descriptor.get("digest", ""), name, "manifest")
    manifest = _object(_json(manifest_bytes, "the manifest", name), "the manifest", name)
    if not isinstance(manifest.get("config"), dict) or "digest" not in manifest["config"]:
        raise ImageError(f"image {name}: the manifest names no config")
    config = _object(_json(_blob(folder, manifest["config"]["digest"], name, "config"), "the config", name),
                     "the config", name)
    layers = tuple(Layer(str(d.get("digest", "")), _blob(folder, d.get("digest", ""), name, f"layer {n + 1}"))
                   for n, d in enumerate(_descriptors(manifest, "the manifest", name, "layers")))
    return Image(name, config, layers, descriptor["digest"])


def _platform(folder: Path, descriptor: dict[str, Any], arch: Arch, name: str) -> dict[str, Any]:
    """The manifest of a manifest list that is for linux on ARCH."""
    listing = _json(_blob(folder, descriptor.get("digest", ""), name, "manifest list"), "the manifest list", name)
    wanted = GOARCH[arch]
    for entry in listing.get("manifests", []):
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == wanted:
            return dict(entry)
    offered = sorted(f"{(e.get('platform') or {}).get('os')}/{(e.get('platform') or {}).get('architecture')}"
                     for e in listing.get("manifests", []))
    raise ImageError(f"image {name}: its manifest list has no linux/{wanted} image (it has: {', '.join(offered)})")


def read_docker_archive(path: Path) -> Image:
    """The image in a `docker save` archive (its first image)."""
    name = str(path)
    if path.is_symlink() or not path.is_file():  # a FIFO hangs open(), /dev/zero never ends
        raise ImageError(f"image {name}: not a regular file (a `docker save` archive is one)")
    try:
        archive = tarfile.open(path)
    except (OSError, tarfile.TarError) as exc:
        raise ImageError(f"image {name}: not a readable tar archive ({exc})") from None
    with archive:
        members = {posixpath.normpath(m.name): m for m in archive.getmembers() if m.isfile()}

        def read(member: str, what: str) -> bytes:
            entry = members.get(posixpath.normpath(member))
            stream = archive.extractfile(entry) if entry is not None else None
            if stream is None:
                raise ImageError(f"image {name}: {what} {member!r} is not in the archive")
            return stream.read()

        if "manifest.json" not in members:
            raise ImageError(f"image {name}: no manifest.json: not `docker save` output (for an OCI layout give "
                             "oci = \"DIR:TAG\")")
        manifest = _json(read("manifest.json", "manifest"), "manifest.json", name)
        if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict) \
                or not isinstance(manifest[0].get("Config"), str):
            raise ImageError(f"image {name}: manifest.json names no image config")
        first = manifest[0]
        config_bytes = read(first["Config"], "config")
        config = _object(_json(config_bytes, "the config", name), "the config", name)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids", [])
        paths = first.get("Layers", [])
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths) \
                or not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise ImageError(f"image {name}: manifest.json's Layers or the config's rootfs.diff_ids is not a list of "
                             "strings")
        if len(diff_ids) != len(paths):
            raise ImageError(f"image {name}: the config lists {len(diff_ids)} layers, manifest.json {len(paths)}")
        layers = []
        for n, (member, diff_id) in enumerate(zip(paths, diff_ids, strict=True)):
            data = read(member, f"layer {n + 1}")
            if _sha256(_uncompressed(data, name, n)) != diff_id:
                raise ImageError(f"image {name}: layer {n + 1} ({member}) does not match its digest {diff_id[:19]} "
                                 "(the archive is damaged): save the image again")
            layers.append(Layer(diff_id, data))
    return Image(name, config, tuple(layers), _sha256(config_bytes))


def read_rootfs(path: Path) -> Image:
    """A root filesystem tar (plain, gzip or zstd) as an image of one layer without a
    config: its command is [init] payload's, or its own init's ([image] init = "image")."""
    name = str(path)
    if path.is_symlink() or not path.is_file():  # a FIFO hangs open(), /dev/zero never ends
        raise ImageError(f"image {name}: not a regular file (a root filesystem tar is one)")
    if path.stat().st_size > MAX_LAYER:  # refused before it is read into memory
        raise ImageError(f"image {name}: {path.stat().st_size >> 20} MiB, more than the {MAX_LAYER >> 20} MiB an "
                         "appliance's image may be")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"image {name}: cannot be read ({exc.strerror})") from None
    digest = _sha256(data)
    return Image(name, {}, (Layer(digest, data),), digest)


MAX_LAYER = compress.MAX_EXPANDED  # a layer's tar: an appliance's whole initramfs must fit in a VM's RAM


def _uncompressed(data: bytes, name: str, number: int, limit: int = MAX_LAYER) -> bytes:
    """A layer blob as a tar: gzip and zstd by their magic (media types are often wrong),
    expanded in steps and refused past LIMIT bytes (a 6 MB gzip of 6 GiB of zeros took 3 GB
    of memory before it died)."""
    too_big = ImageError(f"image {name}: layer {number + 1} expands to more than {limit >> 20} MiB: too big for "
                         "an appliance (or a decompression bomb); refused")
    try:
        if data[:2] == b"\x1f\x8b":
            return _gunzip(data, limit, too_big)
        if data[:4] == compress.ZSTD_MAGIC:
            return compress.decompress(data, limit)
    except ImageError:
        raise
    except ApplianceError as exc:  # zstd's own refusal
        raise (too_big if "does not expand within" in str(exc) else
               ImageError(f"image {name}: layer {number + 1} cannot be decompressed ({exc})")) from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise ImageError(f"image {name}: layer {number + 1} cannot be decompressed ({exc})") from None
    if len(data) > limit:
        raise too_big
    return data


def _gunzip(data: bytes, limit: int, too_big: ImageError) -> bytes:
    """gzip members (one or more) expanded 1 MiB of output at a time, up to LIMIT bytes."""
    out, total, rest = bytearray(), 0, data
    while rest[:2] == b"\x1f\x8b":
        stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        chunk = stream.decompress(rest, 1 << 20)
        while True:
            total += len(chunk)
            if total > limit:
                raise too_big
            out += chunk
            if stream.eof or not stream.unconsumed_tail:
                break
            chunk = stream.decompress(stream.unconsumed_tail, 1 << 20)
        if not stream.eof:
            raise EOFError("the gzip stream ends before its end marker")
        rest = stream.unused_data
    return bytes(out)


def _clean(raw: str, name: str, layer: int) -> str:
    """An entry's path inside the root ("" for the root itself), or ImageError when it
    would leave it."""
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise ImageError(f"image {name}: layer {layer + 1} has an entry {raw!r} that leaves the image's root")
    return posixpath.normpath("/".join(parts)) if parts else ""


class _Tree:
    """The image's file system as the layers build it: path -> (entry, layer digest)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entries: dict[str, tuple[cpio.Entry, str]] = {}

    def _through_link(self, path: str) -> str | None:
        parts = path.split("/")
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            held = self.entries.get(parent)
            if held is not None and held[0].kind == "symlink":
                return parent
        return None

    def remove(self, path: str) -> None:
        prefix = path + "/"
        for key in [k for k in self.entries if k == path or k.startswith(prefix)]:
            del self.entries[key]

    def empty(self, folder: str) -> None:
        """An opaque directory: what lower layers put under FOLDER goes."""
        prefix = folder + "/" if folder else ""
        for key in [k for k in self.entries if k.startswith(prefix) and k != folder]:
            del self.entries[key]

    def put(self, path: str, entry: cpio.Entry, digest: str, layer: int) -> None:
        link = self._through_link(path)
        if link is not None:
            raise ImageError(f"image {self.name}: layer {layer + 1} writes {path!r} through the symbolic link "
                             f"{link!r} an earlier entry made: that could write outside the image; refused")
        if entry.kind != "dir":
            self.remove(path)  # a file replaces a directory, and everything under it
        self.entries[path] = (entry, digest)


def apply(image: Image) -> list[Placed]:
    """The image's files after every layer, each named `oci:<digest>` of the layer that
    wrote it last, in path order (the initramfs sorts them again)."""
    tree = _Tree(image.name)
    for number, layer in enumerate(image.layers):
        raw = _uncompressed(layer.data, image.name, number)
        try:
            archive = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
            members = archive.getmembers()
        except tarfile.TarError as exc:
            raise ImageError(f"image {image.name}: layer {number + 1} is not a tar archive ({exc})") from None
        _apply_layer(tree, archive, members, layer.digest, number)
    return [Placed(entry, f"oci:{digest}") for path, (entry, digest) in sorted(tree.entries.items()) if path]


def _apply_layer(tree: _Tree, archive: tarfile.TarFile, members: list[tarfile.TarInfo], digest: str, number: int) -> None:
    bodies: dict[str, bytes] = {}
    opaque = [_clean(posixpath.dirname(m.name), tree.name, number) for m in members
              if posixpath.basename(m.name) == OPAQUE]
    for folder in opaque:  # before this layer's own entries, which stay
        tree.empty(folder)
    for member in members:
        base = posixpath.basename(member.name.rstrip("/"))
        path = _clean(member.name, tree.name, number)
        if base == OPAQUE or not path:
            continue
        if base.startswith(WHITEOUT):
            target = posixpath.join(posixpath.dirname(path), base[len(WHITEOUT):])
            _clean(target, tree.name, number)
            if tree._through_link(target) is not None:
                raise ImageError(f"image {tree.name}: layer {number + 1} whites out {target!r} through a symbolic link")
            tree.remove(target)
            continue
        perm = stat.S_IMODE(member.mode)
        if member.isdir():
            entry = cpio.directory(path, perm)
        elif member.issym():
            entry = cpio.symlink(path, member.linkname)
        elif member.islnk():
            target = _clean(member.linkname, tree.name, number)
            earlier = tree.entries.get(target)
            held = bodies.get(target, earlier[0].data if earlier is not None and earlier[0].kind == "file" else None)
            if held is None:
                raise ImageError(f"image {tree.name}: layer {number + 1} hard-links {path!r} to {target!r}, "
                                 "which it does not hold")
            entry = cpio.file(path, held, perm)
        elif member.isfile():
            stream = archive.extractfile(member)
            body = stream.read() if stream else b""
            bodies[path] = body
            entry = cpio.file(path, body, perm)
        else:
            continue  # device nodes and fifos: devtmpfs makes the devices
        tree.put(path, entry, digest, number)


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def running(template: Template, image: Image, placed: list[Placed]) -> Template:
    """TEMPLATE running what IMAGE's config says: Entrypoint then Cmd (unless [init]
    payload names a command, as `docker run IMAGE CMD` would), with its Env, WorkingDir
    and User either way. A command without a slash is looked up on the image's PATH
    among PLACED, as a container runtime would (the init execs a path)."""
    config = image.config.get("config") or {}
    if not isinstance(config, dict):
        raise ImageError(f"image {image.name}: its config's \"config\" is {type(config).__name__}, not an object")
    argv = _words(config, "Entrypoint", image.name) + _words(config, "Cmd", image.name)
    if not template.payload and not argv:
        raise ImageError(f"image {image.name}: its config has neither Entrypoint nor Cmd: give [init] payload")
    env = _words(config, "Env", image.name)
    if not template.payload and "/" not in argv[0]:
        argv = (_on_path(argv[0], env, {p.entry.path for p in placed}, image.name), *argv[1:])
    user = config.get("User")
    user = "" if user is None else user
    if not isinstance(user, str):
        raise ImageError(f"image {image.name}: User is {type(user).__name__} {user!r:.40}, not a string")
    if user and not all(part.isdigit() for part in user.split(":")):
        raise ImageError(f"image {image.name}: User {user!r} is a name; the appliance has no passwd to look it up: "
                         "give a numeric UID[:GID] in the image")
    if user:
        try:
            check_user(user, f"image {image.name}")
        except TemplateError as exc:
            raise ImageError(str(exc)) from None
    return replace(template, payload=template.payload or argv, env=env,
                   workdir=str(config.get("WorkingDir") or ""), user=user)


def _words(config: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
    """Entrypoint, Cmd or Env: a list of strings (the image spec's form), or absent; a
    string (a shell form) or a number is refused, never split into characters."""
    value = config.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ImageError(f"image {name}: {key} is {type(value).__name__} {value!r:.60}, not a list of strings "
                         "(the image spec's form)")
    return tuple(value)


def _on_path(command: str, env: tuple[str, ...], present: set[str], name: str) -> str:
    search = next((e.partition("=")[2] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    for folder in search.split(":"):
        candidate = posixpath.join(folder, command)
        if candidate.lstrip("/") in present:
            return candidate
    raise ImageError(f"image {name}: its command {command!r} is on none of PATH {search}: give a path")


def signature(image: tuple[str, str], folder: Path) -> str:
    """What the build depends on, cheaply: an OCI layout's index.json (a new image is a
    new manifest digest there; blobs never change), a docker archive's size and mtime."""
    kind, spec = image
    if kind == "oci":
        index = folder / spec.rpartition(":")[0] / "index.json"
        return f"oci {spec} " + (index.read_text() if index.is_file() else "missing")
    path = folder / spec
    info = path.stat() if path.is_file() else None
    return f"{kind} {spec} " + (f"{info.st_size}:{info.st_mtime_ns}" if info else "missing")


def load(spec: str, kind: str, folder: Path, arch: Arch) -> Image:
    """The image a template names: `oci = "DIR:TAG"`, `docker-archive = "FILE"` or
    `rootfs = "FILE"`, relative to the template's folder."""
    if kind == "oci":
        where, sep, tag = spec.rpartition(":")
        if not sep or not where or not tag:
            raise ImageError(f"[image] oci = {spec!r}: give DIR:TAG (an OCI image layout folder and a tag in it)")
        return read_layout(folder / where, tag, arch)
    if kind == "rootfs":
        return read_rootfs(folder / spec)
    return read_docker_archive(folder / spec)

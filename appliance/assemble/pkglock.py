"""A template's package lock: the Debian packages apt chose, pinned by version and digest.

It lives beside the template (`python.toml` -> `python.lock`) and records what the
template asked for, so a lock that no longer matches is noticed, and every package of
the closure with its sha256 from apt's index, so two builds months apart unpack the
same bytes. `appliance lock TEMPLATE` writes it again.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from appliance.assemble.apt import PackageError, Pin
from appliance.fsutil import atomic_write

_FIELDS = ("name", "version", "arch", "sha256", "size", "filename")


@dataclass(frozen=True)
class Lock:
    request: tuple[str, ...]  # the template's [packages] debian, as written
    pins: tuple[Pin, ...]


def lock_path(template_file: Path) -> Path:
    return template_file.with_suffix(".lock")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dumps(lock: Lock, template: str) -> str:
    lines = [f"# Debian packages of template {template}, as apt resolved them; do not edit.",
             f"# Refresh with `appliance lock {template}` (after `apt-get update` for newer versions).",
             "request = [" + ", ".join(_quote(r) for r in lock.request) + "]"]
    for pin in lock.pins:
        lines += ["", "[[package]]"]
        lines += [f"{key} = {getattr(pin, key)}" if key == "size" else f"{key} = {_quote(getattr(pin, key))}"
                  for key in _FIELDS]
    return "\n".join(lines) + "\n"


def loads(text: str, where: str) -> Lock:
    try:
        raw = tomllib.loads(text)
        request = tuple(str(r) for r in raw["request"])
        pins = tuple(Pin(str(item["name"]), str(item["version"]), str(item["arch"]), str(item["sha256"]),
                         int(item["size"]), str(item["filename"])) for item in raw.get("package", []))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise PackageError(f"{where} is unreadable ({type(exc).__name__}: {exc}): "
                           "restore it, or write it again with `appliance lock`") from None
    for pin in pins:
        problem = pin_problem(pin)
        if problem:
            raise PackageError(f"{where}: {problem}: write it again with `appliance lock`")
    return Lock(request, pins)


# Debian policy 5.6.1 and 5.6.12: what a package name and a version may contain.
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_VERSION = re.compile(r"[0-9A-Za-z.+~:-]+")
_ARCH = re.compile(r"[a-z0-9-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def pin_problem(pin: Pin) -> str | None:
    """Why PIN cannot be a package of a lock, or None: its name, version and architecture
    must be Debian's (they make paths in the cache and arguments to apt), its sha256 hex."""
    if not _NAME.fullmatch(pin.name):
        return f"{pin.name!r} is not a Debian package name"
    if not _VERSION.fullmatch(pin.version):
        return f"package {pin.name} has version {pin.version!r}, not a Debian version"
    if not _ARCH.fullmatch(pin.arch):
        return f"package {pin.name} has architecture {pin.arch!r}"
    if not _SHA256.fullmatch(pin.sha256):
        return f"package {pin.name} has no valid sha256"
    return None


def unasked(lock: Lock, control: dict[str, dict[str, str]]) -> list[str]:
    """The packages of LOCK that its request does not bring in: not named by it, and not
    reached from it through the Depends and Pre-Depends (any alternative, or a package
    that Provides it) of the locked packages' own control files (CONTROL: name -> fields,
    read from the digest-checked .debs). A package added to the lock by hand is one."""
    provides: dict[str, set[str]] = {}
    for name, fields in control.items():
        provides.setdefault(name, set()).add(name)
        for virtual in _names(fields.get("Provides", "")):
            provides.setdefault(virtual, set()).add(name)
    reached: set[str] = set()
    todo = [n.split(":")[0].split("=")[0] for n in lock.request]
    while todo:
        for name in provides.get(todo.pop(), set()) - reached:
            reached.add(name)
            fields = control[name]
            todo += _names(fields.get("Depends", "") + "," + fields.get("Pre-Depends", ""))
    return sorted(set(control) - reached)


def _names(field: str) -> list[str]:
    """The package names of a Depends-style field, every alternative included."""
    out = []
    for group in field.split(","):
        for alternative in group.split("|"):
            name = alternative.strip().split(" ", 1)[0].split("(", 1)[0].split(":", 1)[0]
            if name:
                out.append(name)
    return out


def read(path: Path) -> Lock | None:
    """The lock at PATH, or None if there is none yet."""
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError:
        raise PackageError(f"{path} is unreadable (not UTF-8 text): restore it, or write it again with "
                           "`appliance lock`") from None
    return loads(text, str(path))


def write(path: Path, lock: Lock, template: str) -> None:
    atomic_write(path, dumps(lock, template).encode())


def check(lock: Lock, request: tuple[str, ...], path: Path, template: str) -> None:
    """The lock must be for what the template asks now."""
    if lock.request != request:
        raise PackageError(f"template {template}: lock file {path} was made for [packages] debian = "
                           f"{list(lock.request)}, the template now asks for {list(request)}: "
                           f"run `appliance lock {template}`")


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What relocking changed, a line per package: "name 1.0 -> 1.1", "name new -> 1.0",
    "name 1.0 -> removed" (sorted by name)."""
    return [f"{name} {before.get(name, 'new')} -> {after.get(name, 'removed')}"
            for name in sorted({*before, *after}) if before.get(name) != after.get(name)]

"""A template's package lock: the Debian packages apt chose, pinned by version and digest.

It lives beside the template (`python.toml` -> `python.lock`) and records what the
template asked for, so a lock that no longer matches is noticed, and every package of
the closure with its sha256 from apt's index, so two builds months apart unpack the
same bytes. `appliance lock TEMPLATE` writes it again.
"""

from __future__ import annotations

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
    if any(len(p.sha256) != 64 for p in pins):
        raise PackageError(f"{where}: a package has no valid sha256: write it again with `appliance lock`")
    return Lock(request, pins)


def read(path: Path) -> Lock | None:
    """The lock at PATH, or None if there is none yet."""
    if not path.is_file():
        return None
    return loads(path.read_text(), str(path))


def write(path: Path, lock: Lock, template: str) -> None:
    atomic_write(path, dumps(lock, template).encode())


def check(lock: Lock, request: tuple[str, ...], path: Path, template: str) -> None:
    """The lock must be for what the template asks now."""
    if lock.request != request:
        raise PackageError(f"template {template}: lock file {path} was made for [packages] debian = "
                           f"{list(lock.request)}, the template now asks for {list(request)}: "
                           f"run `appliance lock {template}`")

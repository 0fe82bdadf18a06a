"""Debian packages through apt itself: the dependency closure, the index facts, the .debs.

We never resolve dependencies ourselves. apt-get runs against a private, empty dpkg
status (so it installs everything a package needs, as on an empty machine) with a
private cache, and simulates the install: its "Inst" lines are the closure, with
virtual packages, alternatives, Pre-Depends and conflicts decided by apt. apt-cache
then gives each pinned version's sha256 from the index; `apt-get download` fetches it
and we check that digest before anything is kept. The host's sources and package lists
are used read-only; tests point apt at a local repository with `Apt.options`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance import proc
from appliance.errors import ApplianceError, ToolFailed
from appliance.fsutil import sha256_file


class PackageError(ApplianceError):
    """A package cannot be resolved, found, downloaded or verified."""


@dataclass(frozen=True)
class Pin:
    """One package of a closure, as the lock file records it."""

    name: str
    version: str
    arch: str
    sha256: str = ""
    size: int = 0
    filename: str = ""  # its path in the archive (pool/main/...)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.arch}={self.version}"

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


@dataclass(frozen=True)
class Apt:
    """How to call apt: extra `-o` options (a test's own sources list and lists dir)."""

    options: tuple[str, ...] = ()

    @contextmanager
    def private(self) -> Iterator[list[str]]:
        """apt-get/apt-cache options for an empty dpkg status and a throwaway cache."""
        with tempfile.TemporaryDirectory(prefix="appliance-apt-") as tmp:
            status = Path(tmp) / "status"
            status.touch()
            (Path(tmp) / "cache" / "archives" / "partial").mkdir(parents=True)
            options = [f"Dir::State::status={status}", f"Dir::Cache={tmp}/cache", "Debug::NoLocking=1",
                       "APT::Install-Recommends=false", "APT::Install-Suggests=false", *self.options]
            yield [arg for option in options for arg in ("-o", option)]


_INST = re.compile(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)")


def _apt_error(output: str) -> str:
    """apt's own words for why it refused: the unmet dependencies and the E: lines."""
    lines = output.splitlines()
    unmet = [line.strip() for line in lines if re.match(r"^\s+\S+ : (Pre-)?Depends|^\s+\S+ : (Conflicts|Breaks)", line)]
    errors = [line[3:].strip() for line in lines if line.startswith("E: ")]
    return "; ".join(unmet[:3] or errors[:2]) or (lines[-1] if lines else "no output")


def resolve(apt: Apt, names: Sequence[str], where: str) -> list[Pin]:
    """The closure of NAMES (Depends and Pre-Depends, no Recommends), sorted by name.
    WHERE names the template and key for messages."""
    with apt.private() as options:
        done = proc.run(["apt-get", "-s", "-q", *options, "install", *names], timeout=300, check=False)
    if done.returncode != 0:  # apt says why on stdout (the unmet dependencies) and stderr (E: lines)
        raise PackageError(f"{where}: apt cannot install {' '.join(names)}: {_apt_error(done.stdout + done.stderr)}")
    pins = [Pin(m[1], m[2], m[3]) for m in map(_INST.match, done.stdout.splitlines()) if m]
    if not pins:
        raise PackageError(f"{where}: apt resolved nothing for {' '.join(names)}: {_apt_error(done.stdout + done.stderr)}")
    return sorted(pins, key=lambda p: (p.name, p.arch))


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def describe(apt: Apt, pins: Sequence[Pin], where: str) -> list[Pin]:
    """PINS with sha256, size and filename from apt's index."""
    with apt.private() as options:
        try:
            done = proc.run(["apt-cache", *options, "show", "--no-all-versions", *(p.spec for p in pins)], timeout=300)
        except ToolFailed as exc:
            raise PackageError(f"{where}: apt-cache has no record of {_apt_error(exc.stderr)}: "
                               "run `apt-get update`") from None
    facts = {(s.get("Package"), s.get("Version"), s.get("Architecture")): s for s in _stanzas(done.stdout)}
    out = []
    for pin in pins:
        stanza = facts.get((pin.name, pin.version, pin.arch)) or facts.get((pin.name, pin.version, "all"))
        if stanza is None or "SHA256" not in stanza:
            raise PackageError(f"{where}: apt's index has no SHA256 for {pin.spec}: run `apt-get update`")
        out.append(Pin(pin.name, pin.version, stanza.get("Architecture", pin.arch), stanza["SHA256"],
                       int(stanza.get("Size", "0")), stanza.get("Filename", "")))
    return out


def deb_cache(cache: Path) -> Path:
    return cache / "debs"


def cached_deb(pin: Pin, cache: Path) -> Path:
    """Where PIN's .deb is kept: named by its digest, so two versions never collide;
    always a file directly in the cache's debs/ (a name that would leave it is refused)."""
    folder = deb_cache(cache)
    path = folder / f"{pin.sha256[:16]}-{pin.deb_name}"
    if path.parent != folder or "/" in pin.deb_name or pin.deb_name.startswith("."):
        raise PackageError(f"package {pin.name!r} would be stored outside {folder}: refusing it")
    return path


def control(deb: Path) -> dict[str, str]:
    """The fields of a .deb's control file that say what it needs and provides."""
    keys = ("Package", "Depends", "Pre-Depends", "Provides")
    done = proc.run(["dpkg-deb", "--field", str(deb), *keys], timeout=60)
    return {k: v for k, v in (line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)}


def fetch_all(apt: Apt, pins: Sequence[Pin], cache: Path, where: str) -> list[Path]:
    """Every pin's .deb in the cache, in the pins' order: the missing ones downloaded by
    one `apt-get download` (apt fetches them over one pipelined connection: a process
    per package spent most of a cold build starting apt), each digest checked as fetch
    does."""
    paths = [cached_deb(pin, cache) for pin in pins]
    missing = [pin for pin, path in zip(pins, paths, strict=True)
               if not (path.is_file() and sha256_file(path) == pin.sha256)]
    if len(missing) > 1:
        folder = deb_cache(cache)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp, apt.private() as options:
            try:
                proc.run(["apt-get", "-q", *options, "download", *(pin.spec for pin in missing)], cwd=Path(tmp),
                         timeout=1800)
            except ToolFailed as exc:
                raise PackageError(f"{where}: cannot download {len(missing)} packages ({_apt_error(exc.stderr)}): run "
                                   "`apt-get update`, or refresh the lock file with `appliance lock`") from None
            for pin in missing:
                _keep(Path(tmp) / pin.deb_name, pin, cached_deb(pin, cache), where)
    elif missing:
        fetch(apt, missing[0], cache, where)
    return paths


def _keep(download: Path, pin: Pin, path: Path, where: str) -> None:
    """Move a downloaded .deb into the cache once its digest is the lock's."""
    if not download.is_file():
        raise PackageError(f"{where}: apt did not download {pin.spec} (no {download.name}): run `apt-get update`")
    digest = sha256_file(download)
    if digest != pin.sha256:
        raise PackageError(f"{where}: {pin.spec} has sha256 {digest[:16]}..., the lock file says "
                           f"{pin.sha256[:16]}...: the archive changed; check it, then `appliance lock` to accept")
    shutil.move(download, path)


def fetch(apt: Apt, pin: Pin, cache: Path, where: str) -> Path:
    """PIN's .deb in the cache, downloaded now if needed; its sha256 is checked either
    way (a damaged cached file is fetched again)."""
    path = cached_deb(pin, cache)
    if path.is_file() and sha256_file(path) == pin.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=path.parent) as tmp, apt.private() as options:
        try:
            proc.run(["apt-get", "-q", *options, "download", pin.spec], cwd=Path(tmp), timeout=900)
        except ToolFailed as exc:
            raise PackageError(f"{where}: cannot download {pin.spec} ({_apt_error(exc.stderr)}): run `apt-get update`, "
                               "or refresh the lock file with `appliance lock`") from None
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise PackageError(f"{where}: downloading {pin.spec} gave {len(debs)} files, expected one")
        _keep(debs[0], pin, path, where)
    return path

"""Debian packages through apt, against a small local repository made here (dpkg-deb +
dpkg-scanpackages), so no network is needed: the closure with alternatives, Provides,
a missing dependency and a conflict; digests; unpacking; the lock file round trip."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.assemble import apt, packages, pkglock
from appliance.assemble.apt import PackageError
from appliance.assemble.template import parse_template

# name -> (control fields, files)
PACKAGES = {
    "alpha": ({"Depends": "beta | gamma, virt-thing"}, {"usr/bin/alpha": b"#!/bin/sh\necho alpha\n"}),
    "beta": ({}, {"usr/bin/beta": b"beta", "usr/share/doc/beta/README": b"docs", "usr/lib/beta/data": b"x" * 100,
                  "usr/share/doc/beta/copyright": (
                      b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                      b"Files: *\nCopyright: 2020 t\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: Expat\n"
                      b" Permission is hereby granted...\n")}),
    "gamma": ({}, {"usr/bin/gamma": b"gamma"}),
    "provider": ({"Provides": "virt-thing"}, {"usr/lib/provider.so": b"so"}),
    "broken": ({"Depends": "missing-package"}, {"usr/bin/broken": b"b"}),
    "left": ({"Conflicts": "right"}, {"usr/bin/left": b"l"}),
    "right": ({}, {"usr/bin/right": b"r"}),
}


def make_deb(root: Path, name: str, fields: dict[str, str], files: dict[str, bytes]) -> None:
    tree = root / "src" / name
    (tree / "DEBIAN").mkdir(parents=True)
    control = {"Package": name, "Version": "1.0-1", "Architecture": "all", "Maintainer": "t <t@example.org>",
               "Description": f"test package {name}", **fields}
    (tree / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    for path, data in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_bytes(data)
        (tree / path).chmod(0o755 if "/bin/" in path else 0o644)
    if name == "beta":  # a symlink and a hard link, as real packages have
        (tree / "usr/bin/beta-link").symlink_to("beta")
        os.link(tree / "usr/lib/beta/data", tree / "usr/lib/beta/data-hard")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(root / "repo" / f"{name}.deb")],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A trusted file: repository and the apt options that use it (and only it)."""
    if shutil.which("dpkg-scanpackages") is None:
        pytest.fail("dpkg-scanpackages is not installed (package dpkg-dev): run ./setup")
    root = tmp_path_factory.mktemp("aptrepo")
    (root / "repo").mkdir()
    for name, (fields, files) in PACKAGES.items():
        make_deb(root, name, fields, files)
    index = subprocess.run(["dpkg-scanpackages", "."], cwd=root / "repo", capture_output=True, text=True, check=True)
    (root / "repo" / "Packages").write_text(index.stdout)
    (root / "sources.list").write_text(f"deb [trusted=yes] file:{root / 'repo'} ./\n")
    (root / "parts").mkdir()
    (root / "lists" / "partial").mkdir(parents=True)
    tool = apt.Apt((f"Dir::Etc::sourcelist={root / 'sources.list'}", f"Dir::Etc::sourceparts={root / 'parts'}",
                    f"Dir::State::Lists={root / 'lists'}"))
    with tool.private() as options:
        subprocess.run(["apt-get", "-q", *options, "update"], check=True, capture_output=True)
    return root, tool


def template_in(folder: Path, debian: list[str]):
    text = f"[packages]\ndebian = {debian!r}\n".replace("'", '"')
    (folder / "pkgs.toml").write_text(text)
    return parse_template("pkgs", text, folder)


def test_placed_writes_the_lock_then_holds_the_template_to_it(repo, tmp_path):
    _, tool = repo
    template = template_in(tmp_path, ["alpha"])
    placed, facts = packages.placed(template, tmp_path / "cache", tool)
    assert [(f["name"], f["version"], f["license"]) for f in facts] == [
        ("alpha", "1.0-1", "NOASSERTION"), ("beta", "1.0-1", "GPL-2.0-or-later AND MIT"), ("provider", "1.0-1", "NOASSERTION")]
    lock = pkglock.read(tmp_path / "pkgs.lock")
    assert lock is not None and lock.request == ("alpha",) and [p.name for p in lock.pins] == ["alpha", "beta", "provider"]
    assert {p.entry.path for p in placed} >= {"usr/bin/alpha", "usr/bin/beta", "usr/lib/provider.so"}
    again, _ = packages.placed(template, tmp_path / "cache", tool)  # from the lock and the cache
    assert [p.entry for p in again] == [p.entry for p in placed]
    changed = template_in(tmp_path, ["alpha", "gamma"])
    with pytest.raises(PackageError, match=r"lock file .*pkgs.lock was made for .*'alpha'\].*appliance lock pkgs"):
        packages.placed(changed, tmp_path / "cache", tool)
    packages.relock(changed, tool)
    # gamma, now asked for, satisfies alpha's "beta | gamma": apt no longer takes beta
    assert [p.name for p in pkglock.read(tmp_path / "pkgs.lock").pins] == ["alpha", "gamma", "provider"]


def test_fetch_all_downloads_what_is_missing_with_one_apt_and_keeps_the_pins_order(repo, tmp_path, monkeypatch):
    _, tool = repo
    pins = apt.describe(tool, apt.resolve(tool, ["alpha"], "t"), "t")
    calls = []
    real = apt.proc.run

    def counted(argv, **kwargs):
        calls.append(argv)
        return real(argv, **kwargs)

    monkeypatch.setattr(apt.proc, "run", counted)
    got = packages.fetch_all(tool, pins, tmp_path, "t")
    assert [pin for pin, _ in got] == pins
    assert all(path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256 for pin, path in got)
    assert [argv[-3:] for argv in calls if "download" in argv] == [[pin.spec for pin in pins]]  # one apt for all three
    got[1][1].write_bytes(b"damaged")
    calls.clear()
    packages.fetch_all(tool, pins, tmp_path, "t")
    assert [argv[-1] for argv in calls if "download" in argv] == [pins[1].spec]  # the damaged one alone, again
    wrong = [*pins[:2], apt.Pin(pins[2].name, pins[2].version, pins[2].arch, "0" * 64, 1, "f")]
    (apt.cached_deb(wrong[2], tmp_path)).unlink(missing_ok=True)
    got[0][1].unlink()
    with pytest.raises(PackageError, match="provider:all=1.0-1 has sha256 .*, the lock file says 0000000000000000"):
        packages.fetch_all(tool, wrong, tmp_path, "t")
    assert not list(apt.deb_cache(tmp_path).glob(".download-*"))  # nothing half-downloaded left

"""Debian packages by apt: the dependency closure, the index's facts, fetching by digest, unpacking."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.assemble import apt, sources
from appliance.assemble.apt import PackageError, Pin

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


def test_closure_takes_the_first_alternative_and_a_provider(repo):
    _, tool = repo
    pins = apt.resolve(tool, ["alpha"], "test")
    assert [(p.name, p.version, p.arch) for p in pins] == [("alpha", "1.0-1", "all"), ("beta", "1.0-1", "all"),
                                                          ("provider", "1.0-1", "all")]


def test_index_facts_match_the_files(repo):
    root, tool = repo
    pins = apt.describe(tool, apt.resolve(tool, ["alpha"], "test"), "test")
    for pin in pins:
        deb = root / "repo" / f"{pin.name}.deb"
        assert pin.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()
        assert pin.size == deb.stat().st_size and pin.filename.endswith(f"{pin.name}.deb")


@pytest.mark.parametrize("names, message", [
    (["broken"], "broken : Depends: missing-package"),
    (["no-such-package"], "Unable to locate package no-such-package"),
    (["left", "right"], "Conflicts: right"),
])
def test_unresolvable_requests_are_one_line(repo, names, message):
    with pytest.raises(PackageError, match=f"template t: \\[packages\\] debian: apt cannot install .*{message}"):
        apt.resolve(repo[1], names, "template t: [packages] debian")


def test_fetch_checks_the_digest_and_keeps_nothing_bad(repo, tmp_path):
    _, tool = repo
    pin = apt.describe(tool, apt.resolve(tool, ["gamma"], "t"), "t")[0]
    path = apt.fetch(tool, pin, tmp_path, "t")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256
    mtime = path.stat().st_mtime_ns
    assert apt.fetch(tool, pin, tmp_path, "t").stat().st_mtime_ns == mtime  # kept: not fetched again
    path.write_bytes(b"damaged")
    assert hashlib.sha256(apt.fetch(tool, pin, tmp_path, "t").read_bytes()).hexdigest() == pin.sha256
    wrong = Pin(pin.name, pin.version, pin.arch, "0" * 64, pin.size, pin.filename)
    with pytest.raises(PackageError, match="gamma:all=1.0-1 has sha256 .*, the lock file says 0000000000000000"):
        apt.fetch(tool, wrong, tmp_path, "t")
    assert sorted(p.name for p in apt.deb_cache(tmp_path).iterdir()) == [path.name]  # no partial download left


def test_unpack_keeps_links_and_drops_docs(repo):
    root, tool = repo
    pin = apt.describe(tool, apt.resolve(tool, ["beta"], "t"), "t")[0]
    unpacked = sources.unpack_deb(root / "repo" / "beta.deb", pin, sources.DEFAULT_EXCLUDE)
    placed = {p.entry.path: p for p in unpacked.placed}
    # its license was read from the copyright file, which the default excludes drop
    assert unpacked.license == "GPL-2.0-or-later AND MIT" and unpacked.copyright_found  # lib/* is Expat
    assert "usr/share/doc/beta/copyright" not in placed
    assert placed["usr/bin/beta"].entry.data == b"beta" and placed["usr/bin/beta"].entry.mode & 0o777 == 0o755
    assert placed["usr/bin/beta-link"].entry.kind == "symlink" and placed["usr/bin/beta-link"].entry.data == b"beta"
    assert placed["usr/lib/beta/data-hard"].entry.data == b"x" * 100  # a hard link becomes a copy
    assert "usr/share/doc/beta/README" not in placed
    assert {p.source for p in placed.values()} == {"debian beta=1.0-1"}
    everything = sources.unpack_deb(root / "repo" / "beta.deb", pin, ())
    assert "usr/share/doc/beta/README" in {p.entry.path for p in everything.placed}
    gamma = apt.describe(tool, apt.resolve(tool, ["gamma"], "t"), "t")[0]
    bare = sources.unpack_deb(root / "repo" / "gamma.deb", gamma, ())
    assert bare.license == "NOASSERTION" and not bare.copyright_found


def test_an_unpacked_package_is_kept_and_read_back_the_same_and_a_damaged_one_is_unpacked_again(repo, tmp_path):
    root, tool = repo
    pin = apt.describe(tool, apt.resolve(tool, ["beta"], "t"), "t")[0]
    deb = root / "repo" / "beta.deb"
    fresh, cached = sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)
    assert not cached and fresh == sources.unpack_deb(deb, pin, sources.DEFAULT_EXCLUDE)
    again, cached = sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)
    assert cached and again == fresh  # entries in order, sources, license and control fields
    assert again.control["Package"] == "beta"
    other, cached = sources.unpack_cached(deb, pin, (), tmp_path)  # another exclude list: another entry
    assert not cached and "usr/share/doc/beta/README" in {p.entry.path for p in other.placed}
    kept = sources.unpacked_path(tmp_path, pin, sources.DEFAULT_EXCLUDE)
    kept.write_bytes(kept.read_bytes()[:100])
    repaired, cached = sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)
    assert not cached and repaired == fresh and sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)[1]

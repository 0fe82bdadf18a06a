"""The assemble tests' shared fixture: a small local Debian repository made here
(dpkg-deb + dpkg-scanpackages), so apt needs no network. Built once for the folder."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.assemble import apt

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


@pytest.fixture(scope="package")
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

"""Kernel sources for `appliance range`: a tag of a git repository exported once into
the cache, named by its commit."""

import subprocess

import pytest

from appliance.assemble import minikernel
from appliance.errors import KernelError


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository shaped like a Linux tree (own_source checks Makefile and init/main.c)
    with two tagged commits."""
    path = tmp_path / "linux"
    (path / "init").mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\n")
    (path / "init" / "main.c").write_text("int one;\n")
    git(path.parent, "init", "-q", str(path))
    for key, value in (("user.email", "t@example.org"), ("user.name", "t")):
        git(path, "config", key, value)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "one")
    git(path, "tag", "v1")
    (path / "init" / "main.c").write_text("int two;\n")
    git(path, "commit", "-qam", "two")
    git(path, "tag", "v2")
    return path


def test_tags_are_exported_once_by_commit(repo, tmp_path):
    cache = tmp_path / "cache"
    one, id_one = minikernel.export_tag(repo, "v1", cache)
    two, id_two = minikernel.export_tag(repo, "v2", cache)
    assert (one / "init" / "main.c").read_text() == "int one;\n" and (two / "init" / "main.c").read_text() == "int two;\n"
    assert id_one == f"git:{git(repo, 'rev-parse', 'v1')}" and id_one != id_two
    assert one.name == f"git-{git(repo, 'rev-parse', 'v1')[:16]}"
    (one / "init" / "main.c").write_text("edited in the cache\n")
    assert minikernel.export_tag(repo, "v1", cache)[0] == one  # kept: not exported again
    assert (one / "init" / "main.c").read_text() == "edited in the cache\n"
    assert not [p for p in (cache / "sources").iterdir() if p.name.startswith(".git-")]


def test_an_unknown_tag_is_one_line(repo, tmp_path):
    with pytest.raises(KernelError, match="has no commit 'v9': name a tag, branch or commit of it"):
        minikernel.export_tag(repo, "v9", tmp_path / "cache")

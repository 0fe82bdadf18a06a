"""Merging sources into one tree: merged-/usr directory links, collisions, lookups."""

import pytest

from appliance.assemble import cpio, layout
from appliance.assemble.layout import LayoutError, Placed


def paths(tree):
    return {p.entry.path: p for p in tree}


def test_files_move_under_a_directory_link():
    tree = paths(layout.merge([
        Placed(cpio.file("bin/bench", b"ours", 0o755), "program bench"),
        Placed(cpio.directory("bin"), "debian busybox=1"),
        Placed(cpio.file("bin/busybox", b"bb", 0o755), "debian busybox=1"),
        Placed(cpio.symlink("bin", "usr/bin"), "host /usr/bin/python3"),
        Placed(cpio.file("usr/bin/python3", b"py", 0o755), "host /usr/bin/python3"),
    ]))
    assert tree["bin"].entry.kind == "symlink" and tree["bin"].entry.data == b"usr/bin"
    assert tree["usr/bin/bench"].source == "program bench" and tree["usr/bin/busybox"].entry.data == b"bb"
    assert not any(path.startswith("bin/") for path in tree)


def test_same_things_from_two_sources_are_one():
    libc = cpio.file("usr/lib/libc.so.6", b"libc", 0o755)
    tree = layout.merge([Placed(libc, "host /a"), Placed(libc, "host /b"),
                         Placed(cpio.directory("usr"), "debian x=1"), Placed(cpio.directory("usr", 0o700), "debian y=1")])
    assert [p.entry.path for p in tree] == ["usr", "usr/lib/libc.so.6"]
    assert tree[1].source == "host /a"  # the first source is named


@pytest.mark.parametrize("other", [cpio.file("etc/x", b"other"), cpio.file("etc/x", b"same", 0o755),
                                   cpio.symlink("etc/x", "y")])
def test_different_things_on_one_path_collide(other):
    with pytest.raises(LayoutError, match=r"/etc/x comes from template files/x and from debian pkg=2, which differ"):
        layout.merge([Placed(cpio.file("etc/x", b"same"), "template files/x"), Placed(other, "debian pkg=2")])


def test_a_link_leaving_the_image_is_not_a_directory_link():
    tree = paths(layout.merge([Placed(cpio.symlink("lib", "../../outside"), "host"),
                               Placed(cpio.file("lib/x", b"x"), "debian")]))
    assert "lib/x" in tree and tree["lib"].entry.kind == "symlink"


def test_lookup_follows_links_like_the_kernel():
    tree = layout.merge([
        Placed(cpio.symlink("bin", "usr/bin"), "h"),
        Placed(cpio.file("usr/bin/python3.11", b"py", 0o755), "h"),
        Placed(cpio.symlink("usr/bin/python3", "python3.11"), "h"),
        Placed(cpio.symlink("usr/bin/abs", "/usr/bin/python3"), "h"),
        Placed(cpio.symlink("usr/bin/loop", "loop"), "h"),
    ])
    assert layout.lookup(tree, "/bin/python3").entry.path == "usr/bin/python3.11"
    assert layout.lookup(tree, "/usr/bin/abs").entry.path == "usr/bin/python3.11"
    assert layout.lookup(tree, "/usr/bin/loop") is None
    assert layout.lookup(tree, "/usr/bin/none") is None
    assert layout.lookup(tree, "/usr/bin") is None  # a directory is not a file

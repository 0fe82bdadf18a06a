import shutil
import stat
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.assemble import cpio


def sample() -> list[cpio.Entry]:
    return [
        cpio.file("init", b"\x7fELF binary", 0o755),
        cpio.device("dev/console", "c", 5, 1),
        cpio.symlink("bin/sh", "/init"),
        cpio.file("etc/appliance/init.conf", b"mount proc /proc\n"),
        cpio.directory("proc"),
    ]


def test_round_trip_keeps_every_record():
    entries = {e.path: e for e in cpio.read(cpio.write(sample(), 1234))}
    assert entries["init"].data == b"\x7fELF binary"
    assert stat.S_IMODE(entries["init"].mode) == 0o755
    assert entries["dev/console"].kind == "chardev"
    assert (entries["dev/console"].rdev_major, entries["dev/console"].rdev_minor) == (5, 1)
    assert entries["bin/sh"].kind == "symlink" and entries["bin/sh"].data == b"/init"
    # parents that were not listed are added as directories
    assert entries["etc"].kind == "dir" and entries["etc/appliance"].kind == "dir"


def test_parents_come_before_children_and_order_is_input_independent():
    forward = cpio.write(sample())
    backward = cpio.write(list(reversed(sample())))
    assert forward == backward
    paths = [e.path for e in cpio.read(forward)]
    for path in paths:
        if "/" in path:
            assert paths.index(path.rsplit("/", 1)[0]) < paths.index(path)


def test_identical_bytes_on_rebuild_and_mtime_clamped():
    late = cpio.Entry("a", stat.S_IFREG | 0o644, b"x", mtime=2_000_000_000)
    first = cpio.write([late], source_date_epoch=1_000)
    assert first == cpio.write([late], source_date_epoch=1_000)
    assert cpio.read(first)[0].mtime == 1_000


def test_records_are_four_byte_aligned_and_end_with_trailer():
    blob = cpio.write(sample())
    assert len(blob) % 4 == 0
    assert b"TRAILER!!!\0" in blob[-128:]


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_gnu_cpio_lists_what_we_wrote(tmp_path):
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.write(sample()))
    listing = subprocess.run(["cpio", "-itv", "--quiet"], stdin=archive.open("rb"), capture_output=True,
                             text=True, check=True).stdout.splitlines()
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in listing]
    assert names == ["bin", "bin/sh", "dev", "dev/console", "etc", "etc/appliance",
                     "etc/appliance/init.conf", "init", "proc"]
    console = next(line for line in listing if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio not installed")
def test_gnu_cpio_extracts_contents(tmp_path):
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.write([e for e in sample() if e.kind != "chardev"]))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], stdin=archive.open("rb"), cwd=out, check=True)
    assert (out / "etc/appliance/init.conf").read_bytes() == b"mount proc /proc\n"
    assert (out / "bin/sh").readlink().as_posix() == "/init"


@pytest.mark.parametrize("bad", ["/abs", "../up", "a/../../b", ""])
def test_bad_paths_are_rejected(bad):
    with pytest.raises(cpio.CpioError):
        cpio.file(bad, b"")


def test_duplicates_and_file_used_as_directory_are_rejected():
    with pytest.raises(cpio.CpioError, match="duplicate"):
        cpio.write([cpio.file("a", b""), cpio.file("a", b"x")])
    with pytest.raises(cpio.CpioError, match="both"):
        cpio.write([cpio.file("a", b""), cpio.file("a/b", b"")])


def test_reader_rejects_garbage_and_truncation():
    blob = cpio.write(sample())
    with pytest.raises(cpio.CpioError, match="magic"):
        cpio.read(b"nonsense" + blob)
    with pytest.raises(cpio.CpioError):
        cpio.read(blob[:150])


names = st.lists(st.from_regex(r"[a-z0-9_]{1,8}(/[a-z0-9_]{1,8}){0,2}", fullmatch=True), unique=True, max_size=8)


@given(names, st.binary(max_size=64))
def test_property_round_trip(paths, data):
    # Keep only paths that are not a prefix-directory of another (a file cannot be a dir).
    files = [p for p in paths if not any(o.startswith(p + "/") for o in paths)]
    entries = [cpio.file(p, data) for p in files]
    back = {e.path: e.data for e in cpio.read(cpio.write(entries)) if e.kind == "file"}
    assert back == {p: data for p in files}



def test_concatenated_archives_read_as_the_kernel_unpacks_them():
    first = cpio.write([cpio.file("a/x", b"1"), cpio.directory("a", 0o700)])
    second = cpio.write([cpio.file("a/y", b"2"), cpio.file("a/x", b"new")])  # a/ again, with the default mode
    entries = {e.path: e for e in cpio.read(first + b"\0" * 8 + second)}
    assert entries["a/x"].data == b"new" and entries["a/y"].data == b"2"  # the later one wins, as in the kernel
    assert entries["a"].mode & 0o777 == 0o755 and list(entries).count("a") == 1
    with pytest.raises(cpio.CpioError, match="bad magic"):
        cpio.read(first + b"junk")


def test_a_distributions_initrd_with_ours_appended_reads_as_the_kernel_unpacks_it():
    import gzip

    from appliance.assemble import compress
    from appliance.assemble.compress import Compression
    from appliance.errors import ApplianceError

    microcode = cpio.write([cpio.file("kernel/x86/microcode/GenuineIntel.bin", b"ucode")], 0)
    theirs = gzip.compress(cpio.write([cpio.file("init", b"#!/bin/sh\n", 0o755), cpio.symlink("lib", "usr/lib")], 0))
    ours = compress.compress(cpio.write([cpio.file("appliance/init", b"\x7fELF", 0o755)], 0), Compression.ZSTD)
    blob = microcode + theirs + bytes(-len(microcode + theirs) % 4) + ours
    paths = {e.path: e for e in cpio.read_initrd(blob)}
    assert {"kernel/x86/microcode/GenuineIntel.bin", "init", "lib", "appliance/init"} <= set(paths)
    assert paths["lib"].kind == "symlink" and paths["appliance/init"].data == b"\x7fELF"
    with pytest.raises(ApplianceError, match="neither zstd nor gzip data"):
        cpio.read_initrd(microcode + b"junk")

"""The ELF closure: on the host's own programs (ldd is the oracle here, and only here)
and on small programs compiled with RUNPATH, RPATH and $ORIGIN."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.assemble import elfclosure
from appliance.assemble.elfclosure import ClosureError, Node

HOST_PROGRAMS = ["/usr/bin/python3", "/usr/bin/qemu-system-x86_64", "/bin/bash", "/sbin/mke2fs"]


def ldd_closure(program: str) -> set[str]:
    """What glibc's loader itself resolves (ldd runs it in trace mode), as real paths."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = {os.path.realpath(program)}
    for line in out.splitlines():
        words = [w for w in line.split() if w.startswith("/")]
        if words:
            paths.add(os.path.realpath(words[0]))
    return paths


@pytest.mark.parametrize("program", HOST_PROGRAMS)
def test_host_programs_match_the_loader(program):
    nodes = elfclosure.closure([program])
    files = {n.path for n in nodes if not n.link}
    assert files == ldd_closure(program)
    # every symlink on the way is kept as a symlink: the loader's names exist in the image
    links = {n.path: n.link for n in nodes if n.link}
    interp = elfclosure.read_elf(Path(os.path.realpath(program))).interp
    chain, real = elfclosure.symlink_chain(interp)  # e.g. /lib64 -> usr/lib64, then the loader's own link
    assert real in files and all(links.get(link.path) == link.link for link in chain)
    for path, target in links.items():
        assert os.readlink(path) == target


def test_ld_cache_agrees_with_ldconfig():
    cache = elfclosure.read_ld_cache()
    listed = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    pairs = [(line.split()[0], line.rsplit("=> ", 1)[1]) for line in listed.splitlines()[1:] if "=> " in line]
    assert pairs and len(cache) == len({name for name, _ in pairs})
    for name, path in pairs:
        assert path in cache[name]


def test_a_missing_cache_is_empty(tmp_path):
    assert elfclosure.read_ld_cache(tmp_path / "none") == {}
    (tmp_path / "junk").write_bytes(b"not a cache")
    assert elfclosure.read_ld_cache(tmp_path / "junk") == {}


def test_symlink_chain_follows_directories_and_files(tmp_path):
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "libx.so.1.2").write_bytes(b"x")
    (tmp_path / "usr" / "lib" / "libx.so.1").symlink_to("libx.so.1.2")
    (tmp_path / "lib").symlink_to("usr/lib")
    links, real = elfclosure.symlink_chain(str(tmp_path / "lib" / "libx.so.1"))
    assert real == str(tmp_path / "usr" / "lib" / "libx.so.1.2")
    assert links == [Node(str(tmp_path / "lib"), "usr/lib"), Node(str(tmp_path / "usr" / "lib" / "libx.so.1"), "libx.so.1.2")]
    with pytest.raises(ClosureError, match="does not exist"):
        elfclosure.symlink_chain(str(tmp_path / "lib" / "nothing"))


def cc(*args: str) -> None:
    subprocess.run(["gcc", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """app/bin/prog -> libouter (RUNPATH $ORIGIN/../lib) -> libinner; old/prog has a
    DT_RPATH that reaches libinner through the library that does not name it."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is not installed: run ./setup")
    root = tmp_path_factory.mktemp("elf")
    lib, bin_, old = root / "app" / "lib", root / "app" / "bin", root / "old"
    for folder in (lib, bin_, old):
        folder.mkdir(parents=True)
    (root / "inner.c").write_text("int inner(void) { return 41; }\n")
    (root / "outer.c").write_text("int inner(void);\nint outer(void) { return inner() + 1; }\n")
    (root / "prog.c").write_text("int outer(void);\nint main(void) { return outer() == 42 ? 0 : 1; }\n")
    cc("-shared", "-fPIC", "-Wl,-soname,libinner.so.1", "-o", str(lib / "libinner.so.1.0"), str(root / "inner.c"))
    (lib / "libinner.so.1").symlink_to("libinner.so.1.0")
    cc("-shared", "-fPIC", "-Wl,-soname,libouter.so.1", "-o", str(lib / "libouter.so.1"), str(root / "outer.c"),
       f"-L{lib}", "-l:libinner.so.1")
    # the program names libinner too (--no-as-needed): libouter, without a search path,
    # finds it because it is loaded already
    cc("-o", str(bin_ / "prog"), str(root / "prog.c"), "-Wl,--no-as-needed", f"-L{lib}", "-l:libouter.so.1", "-l:libinner.so.1",
       "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    # libouter has no search path of its own: with DT_RPATH (not RUNPATH) the program's
    # path is inherited by the libraries it loads
    cc("-o", str(old / "prog"), str(root / "prog.c"), f"-L{lib}", "-l:libouter.so.1",
       f"-Wl,--disable-new-dtags,-rpath,{lib},--allow-shlib-undefined")
    return root


def test_runpath_with_origin(compiled):
    prog = str(compiled / "app" / "bin" / "prog")
    info = elfclosure.read_elf(Path(prog))
    assert info.runpath == ("$ORIGIN/../lib",) and info.rpath == ()
    files = {n.path for n in elfclosure.closure([prog]) if not n.link}
    lib = compiled / "app" / "lib"
    assert {str(lib / "libouter.so.1"), str(lib / "libinner.so.1.0")} <= files
    assert str(lib / "libinner.so.1") in {n.path for n in elfclosure.closure([prog]) if n.link}
    assert subprocess.run([prog]).returncode == 0  # the loader agrees: it runs
    assert files == ldd_closure(prog)


def test_rpath_is_inherited_by_libraries_without_runpath(compiled):
    prog = str(compiled / "old" / "prog")
    info = elfclosure.read_elf(Path(prog))
    assert info.rpath == (str(compiled / "app" / "lib"),) and info.runpath == ()
    files = {n.path for n in elfclosure.closure([prog]) if not n.link}
    assert str(compiled / "app" / "lib" / "libinner.so.1.0") in files  # found through the program's RPATH
    assert files == ldd_closure(prog)


def test_a_missing_library_is_named(compiled, tmp_path):
    shutil.copytree(compiled / "app", tmp_path / "app", symlinks=True)
    (tmp_path / "app" / "lib" / "libinner.so.1.0").unlink()
    with pytest.raises(ClosureError, match=r"library libinner.so.1 \(needed by .*/bin/prog\) not found"):
        elfclosure.closure([str(tmp_path / "app" / "bin" / "prog")])


def test_scripts_and_data_are_only_themselves(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert elfclosure.closure([str(script)]) == [Node(str(script))]
    (tmp_path / "broken").write_bytes(b"\x7fELF" + b"\0" * 10)
    with pytest.raises(ClosureError, match="damaged ELF"):
        elfclosure.closure([str(tmp_path / "broken")])

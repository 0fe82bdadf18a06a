"""Where an initrd's outside files come from: host programs with their library closure,
host files by pattern, and what is left out of packages by default."""

import shutil

import pytest

from appliance.assemble import elfclosure, sources


def test_documentation_is_left_out_of_packages_by_default():
    assert sources.excluded("usr/share/doc/busybox/copyright", sources.DEFAULT_EXCLUDE)
    assert not sources.excluded("usr/share/busybox/x", sources.DEFAULT_EXCLUDE)
    assert sources.excluded("etc/motd", ["etc/*"]) and not sources.excluded("etc/motd", [])


def test_a_host_program_comes_with_its_loader_and_libraries():
    placed = sources.host(("true",), (), "template t")
    paths = {p.entry.path for p in placed}
    assert shutil.which("true").lstrip("/") in paths or "usr/bin/true" in paths
    assert any(path.rsplit("/", 1)[-1].startswith("libc.so") for path in paths)
    assert any("ld-linux" in path for path in paths)
    assert {p.source for p in placed} == {f"host {shutil.which('true')}"}


def test_a_program_that_is_not_elf_or_not_there_is_one_line(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(elfclosure.ClosureError, match="is not an ELF program: list scripts and data in host_files"):
        sources.find_program(str(script), "template t")
    with pytest.raises(elfclosure.ClosureError, match="host program 'no-such-tool' not found on PATH"):
        sources.find_program("no-such-tool", "template t")


def test_host_files_by_pattern_keep_their_host_path_and_say_which_pattern(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.conf").write_text("a")
    placed = sources.host((), (str(tmp_path / "conf" / "*.conf"),), "template t")
    assert [(p.entry.path, p.source) for p in placed] == [
        (str(tmp_path / "conf" / "a.conf").lstrip("/"), f"host_files {tmp_path / 'conf' / '*.conf'}")]

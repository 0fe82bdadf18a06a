"""Guest programs: what a missing cross toolchain says."""


import pytest

from appliance.assemble import guestprog
from appliance.errors import ToolMissing
from appliance.machines import Arch
from tests.conftest import ROOT


def test_a_missing_arm64_dietlibc_is_one_line_and_no_program(tmp_path, monkeypatch):
    monkeypatch.setattr(guestprog, "DIET_LIBS", tmp_path / "diet")
    out = tmp_path / "init"
    with pytest.raises(ToolMissing, match=r"apt-get install dietlibc-dev:arm64 \(./setup does all three\)"):
        guestprog.compile_static(ROOT / "recipes" / "programs" / "init.c", out, Arch.AARCH64)
    assert not out.exists()


def test_a_compiled_program_is_kept_by_its_inputs_and_a_changed_source_compiles_again(tmp_path):
    source = tmp_path / "src" / "hello.c"
    source.parent.mkdir()
    source.write_text("int main(void) { return 0; }\n")
    cache = tmp_path / "cache"
    size, cached = guestprog.compile_cached(source, tmp_path / "a" / "hello", Arch.X86_64, cache)
    assert not cached and size == (tmp_path / "a" / "hello").stat().st_size
    size, cached = guestprog.compile_cached(source, tmp_path / "b" / "hello", Arch.X86_64, cache)
    assert cached and (tmp_path / "b" / "hello").read_bytes() == (tmp_path / "a" / "hello").read_bytes()
    assert (tmp_path / "b" / "hello").stat().st_mode & 0o111
    (source.parent / "extra.h").write_text("#define X 1\n")  # a header beside it is an input too
    assert not guestprog.compile_cached(source, tmp_path / "c" / "hello", Arch.X86_64, cache)[1]
    source.write_text("int main(void) { return 1; }\n")
    assert not guestprog.compile_cached(source, tmp_path / "d" / "hello", Arch.X86_64, cache)[1]

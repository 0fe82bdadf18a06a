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

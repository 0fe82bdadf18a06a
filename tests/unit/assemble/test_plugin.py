"""The instruction clock's TCG plugin: built only against the pinned QEMU plugin header, and a header folder that must hold it."""

from pathlib import Path

import pytest

from appliance.assemble import plugin
from appliance.errors import ApplianceError


def test_the_plugin_is_built_only_for_the_qemu_whose_header_is_pinned(monkeypatch):
    monkeypatch.delenv(plugin.HEADER_ENV, raising=False)
    line = "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
    assert plugin.debian_version(line) == "1:7.2+dfsg-7+deb12u18"
    assert plugin.debian_version("QEMU emulator version 9.1.0") is None
    with pytest.raises(ApplianceError, match="this QEMU is '1:8.2.2'"):
        plugin.header_folder("QEMU emulator version 8.2.2 (Debian 1:8.2.2)", Path("/nonexistent"))
    with pytest.raises(ApplianceError, match="built against QEMU 1:7.2"):
        plugin.header_folder("QEMU emulator version 9.1.0", Path("/nonexistent"))


def test_a_header_folder_of_ones_own_must_hold_the_header(tmp_path, monkeypatch):
    monkeypatch.setenv(plugin.HEADER_ENV, str(tmp_path))
    with pytest.raises(ApplianceError, match="has no qemu-plugin.h"):
        plugin.header_folder("QEMU emulator version 9.1.0", tmp_path)
    (tmp_path / plugin.HEADER).write_text("")
    assert plugin.header_folder("QEMU emulator version 9.1.0", Path("/nonexistent")) == tmp_path

"""The packages of a template: the lock written, the template held to it, and the missing
debs fetched with one apt, against the local repository of conftest.py (no network)."""

import hashlib
from pathlib import Path

import pytest

from appliance.assemble import apt, packages, pkglock
from appliance.assemble.apt import PackageError
from appliance.assemble.template import parse_template


def template_in(folder: Path, debian: list[str]):
    text = f"[packages]\ndebian = {debian!r}\n".replace("'", '"')
    (folder / "pkgs.toml").write_text(text)
    return parse_template("pkgs", text, folder)


def test_placed_writes_the_lock_then_holds_the_template_to_it(repo, tmp_path):
    _, tool = repo
    template = template_in(tmp_path, ["alpha"])
    placed, facts = packages.placed(template, tmp_path / "cache", tool)
    assert [(f["name"], f["version"], f["license"]) for f in facts] == [
        ("alpha", "1.0-1", "NOASSERTION"), ("beta", "1.0-1", "GPL-2.0-or-later AND MIT"), ("provider", "1.0-1", "NOASSERTION")]
    lock = pkglock.read(tmp_path / "pkgs.lock")
    assert lock is not None and lock.request == ("alpha",) and [p.name for p in lock.pins] == ["alpha", "beta", "provider"]
    assert {p.entry.path for p in placed} >= {"usr/bin/alpha", "usr/bin/beta", "usr/lib/provider.so"}
    again, _ = packages.placed(template, tmp_path / "cache", tool)  # from the lock and the cache
    assert [p.entry for p in again] == [p.entry for p in placed]
    changed = template_in(tmp_path, ["alpha", "gamma"])
    with pytest.raises(PackageError, match=r"lock file .*pkgs.lock was made for .*'alpha'\].*appliance lock pkgs"):
        packages.placed(changed, tmp_path / "cache", tool)
    packages.relock(changed, tool)
    # gamma, now asked for, satisfies alpha's "beta | gamma": apt no longer takes beta
    assert [p.name for p in pkglock.read(tmp_path / "pkgs.lock").pins] == ["alpha", "gamma", "provider"]


def test_fetch_all_downloads_what_is_missing_with_one_apt_and_keeps_the_pins_order(repo, tmp_path, monkeypatch):
    _, tool = repo
    pins = apt.describe(tool, apt.resolve(tool, ["alpha"], "t"), "t")
    calls = []
    real = apt.proc.run

    def counted(argv, **kwargs):
        calls.append(argv)
        return real(argv, **kwargs)

    monkeypatch.setattr(apt.proc, "run", counted)
    got = packages.fetch_all(tool, pins, tmp_path, "t")
    assert [pin for pin, _ in got] == pins
    assert all(path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256 for pin, path in got)
    assert [argv[-3:] for argv in calls if "download" in argv] == [[pin.spec for pin in pins]]  # one apt for all three
    got[1][1].write_bytes(b"damaged")
    calls.clear()
    packages.fetch_all(tool, pins, tmp_path, "t")
    assert [argv[-1] for argv in calls if "download" in argv] == [pins[1].spec]  # the damaged one alone, again
    wrong = [*pins[:2], apt.Pin(pins[2].name, pins[2].version, pins[2].arch, "0" * 64, 1, "f")]
    (apt.cached_deb(wrong[2], tmp_path)).unlink(missing_ok=True)
    got[0][1].unlink()
    with pytest.raises(PackageError, match="provider:all=1.0-1 has sha256 .*, the lock file says 0000000000000000"):
        packages.fetch_all(tool, wrong, tmp_path, "t")
    assert not list(apt.deb_cache(tmp_path).glob(".download-*"))  # nothing half-downloaded left

"""Debian packages by apt: the dependency closure, the index's facts, fetching by digest, unpacking."""

import hashlib

import pytest

from appliance.assemble import apt, sources
from appliance.assemble.apt import PackageError, Pin


def test_closure_takes_the_first_alternative_and_a_provider(repo):
    _, tool = repo
    pins = apt.resolve(tool, ["alpha"], "test")
    assert [(p.name, p.version, p.arch) for p in pins] == [("alpha", "1.0-1", "all"), ("beta", "1.0-1", "all"),
                                                           ("provider", "1.0-1", "all")]


def test_index_facts_match_the_files(repo):
    root, tool = repo
    pins = apt.describe(tool, apt.resolve(tool, ["alpha"], "test"), "test")
    for pin in pins:
        deb = root / "repo" / f"{pin.name}.deb"
        assert pin.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()
        assert pin.size == deb.stat().st_size and pin.filename.endswith(f"{pin.name}.deb")


@pytest.mark.parametrize("names, message", [
    (["broken"], "broken : Depends: missing-package"),
    (["no-such-package"], "Unable to locate package no-such-package"),
    (["left", "right"], "Conflicts: right"),
])
def test_unresolvable_requests_are_one_line(repo, names, message):
    with pytest.raises(PackageError, match=f"template t: \\[packages\\] debian: apt cannot install .*{message}"):
        apt.resolve(repo[1], names, "template t: [packages] debian")


def test_fetch_checks_the_digest_and_keeps_nothing_bad(repo, tmp_path):
    _, tool = repo
    pin = apt.describe(tool, apt.resolve(tool, ["gamma"], "t"), "t")[0]
    path = apt.fetch(tool, pin, tmp_path, "t")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256
    mtime = path.stat().st_mtime_ns
    assert apt.fetch(tool, pin, tmp_path, "t").stat().st_mtime_ns == mtime  # kept: not fetched again
    path.write_bytes(b"damaged")
    assert hashlib.sha256(apt.fetch(tool, pin, tmp_path, "t").read_bytes()).hexdigest() == pin.sha256
    wrong = Pin(pin.name, pin.version, pin.arch, "0" * 64, pin.size, pin.filename)
    with pytest.raises(PackageError, match="gamma:all=1.0-1 has sha256 .*, the lock file says 0000000000000000"):
        apt.fetch(tool, wrong, tmp_path, "t")
    assert sorted(p.name for p in apt.deb_cache(tmp_path).iterdir()) == [path.name]  # no partial download left


def test_unpack_keeps_links_and_drops_docs(repo):
    root, tool = repo
    pin = apt.describe(tool, apt.resolve(tool, ["beta"], "t"), "t")[0]
    unpacked = sources.unpack_deb(root / "repo" / "beta.deb", pin, sources.DEFAULT_EXCLUDE)
    placed = {p.entry.path: p for p in unpacked.placed}
    # its license was read from the copyright file, which the default excludes drop
    assert unpacked.license == "GPL-2.0-or-later AND MIT" and unpacked.copyright_found  # lib/* is Expat
    assert "usr/share/doc/beta/copyright" not in placed
    assert placed["usr/bin/beta"].entry.data == b"beta" and placed["usr/bin/beta"].entry.mode & 0o777 == 0o755
    assert placed["usr/bin/beta-link"].entry.kind == "symlink" and placed["usr/bin/beta-link"].entry.data == b"beta"
    assert placed["usr/lib/beta/data-hard"].entry.data == b"x" * 100  # a hard link becomes a copy
    assert "usr/share/doc/beta/README" not in placed
    assert {p.source for p in placed.values()} == {"debian beta=1.0-1"}
    everything = sources.unpack_deb(root / "repo" / "beta.deb", pin, ())
    assert "usr/share/doc/beta/README" in {p.entry.path for p in everything.placed}
    gamma = apt.describe(tool, apt.resolve(tool, ["gamma"], "t"), "t")[0]
    bare = sources.unpack_deb(root / "repo" / "gamma.deb", gamma, ())
    assert bare.license == "NOASSERTION" and not bare.copyright_found


def test_an_unpacked_package_is_kept_and_read_back_the_same_and_a_damaged_one_is_unpacked_again(repo, tmp_path):
    root, tool = repo
    pin = apt.describe(tool, apt.resolve(tool, ["beta"], "t"), "t")[0]
    deb = root / "repo" / "beta.deb"
    fresh, cached = sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)
    assert not cached and fresh == sources.unpack_deb(deb, pin, sources.DEFAULT_EXCLUDE)
    again, cached = sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)
    assert cached and again == fresh  # entries in order, sources, license and control fields
    assert again.control["Package"] == "beta"
    other, cached = sources.unpack_cached(deb, pin, (), tmp_path)  # another exclude list: another entry
    assert not cached and "usr/share/doc/beta/README" in {p.entry.path for p in other.placed}
    kept = sources.unpacked_path(tmp_path, pin, sources.DEFAULT_EXCLUDE)
    kept.write_bytes(kept.read_bytes()[:100])
    repaired, cached = sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)
    assert not cached and repaired == fresh and sources.unpack_cached(deb, pin, sources.DEFAULT_EXCLUDE, tmp_path)[1]

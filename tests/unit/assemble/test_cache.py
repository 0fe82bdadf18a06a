"""The cache verb: sizes by part, and cleaning only what no lock or template uses."""

import json

from appliance.assemble import cache
from appliance.cli import main as cli


def fill(path, size=4096):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_clean_removes_only_unused_entries_and_lists_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("APPLIANCE_CACHE", str(tmp_path))
    used = cache.in_use()
    for path in used:
        fill(path / "kept")
    stale_kernel = tmp_path / "kernels" / "linux-image-6.1.0-1-amd64_6.1.1-1"
    fill(stale_kernel / "boot" / "vmlinuz", 1 << 20)
    half_fetch = tmp_path / "kernels" / ".fetch-abc"  # an interrupted download
    fill(half_fetch / "x")
    assert cli.main(["cache", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    unused = sorted(e["name"] for e in listed["entries"] if not e["in_use"])
    assert unused == [".fetch-abc", "linux-image-6.1.0-1-amd64_6.1.1-1"]
    assert cli.main(["cache", "--clean", "--json"]) == 0
    cleaned = json.loads(capsys.readouterr().out)
    assert sorted(e["name"] for e in cleaned["entries"] if e["removed"]) == unused
    assert cleaned["removed_bytes"] >= 1 << 20
    assert not stale_kernel.exists() and not half_fetch.exists()
    assert all((path / "kept").is_file() for path in used)


def test_hard_links_count_once_and_clean_all_empties_the_parts(tmp_path):
    fill(tmp_path / "sources" / "a" / "file", 8192)
    (tmp_path / "minikernel" / "src-1").mkdir(parents=True)
    (tmp_path / "minikernel" / "src-1" / "file").hardlink_to(tmp_path / "sources" / "a" / "file")
    found = cache.entries(tmp_path, [])
    assert sum(e.bytes for e in found) == 8192
    assert len(cache.clean(tmp_path, found, everything=True)) == 2
    assert list((tmp_path / "sources").iterdir()) == [] and list((tmp_path / "minikernel").iterdir()) == []

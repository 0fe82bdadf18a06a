import pytest

from appliance.fsutil import atomic_path


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "artifact"
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("tool failed")
    assert out.read_bytes() == b"whole" and sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]

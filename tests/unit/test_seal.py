"""A manifest's digest of itself: sealed, checked, and any edit after sealing caught."""

from appliance import seal


def test_a_sealed_manifest_holds_and_its_digest_ignores_key_order():
    data = seal.sealed({"name": "minimal", "files": {"kernel": "ab12"}})
    assert seal.problem(data) is None
    assert seal.own_digest({"files": {"kernel": "ab12"}, "name": "minimal"}) == data[seal.FIELD]


def test_an_edit_after_sealing_or_no_seal_is_named():
    data = seal.sealed({"name": "minimal", "files": {"kernel": "ab12"}})
    assert "edited after it was written" in seal.problem({**data, "files": {"kernel": "cd34"}})
    assert "edited after it was written" in seal.problem({**data, "extra": 1})
    assert "no digest of its own" in seal.problem({"name": "minimal"})
    assert seal.sealed(data) == data  # sealing again changes nothing: the digest leaves itself out

"""The package lock file: its round trip, and a damaged one in one line."""

import pytest

from appliance.assemble import pkglock
from appliance.assemble.apt import PackageError, Pin


def test_lock_round_trip():
    lock = pkglock.Lock(("alpha",), (Pin("alpha", "1:1.0-1", "all", "a" * 64, 10, "pool/a.deb"),
                                     Pin("beta", "2.0", "amd64", "b" * 64, 20, 'pool/"odd".deb')))
    assert pkglock.loads(pkglock.dumps(lock, "t"), "t.lock") == lock


@pytest.mark.parametrize("text", ["request = [", "request = []\n[[package]]\nname = \"x\"\n",
                                  'request = []\n[[package]]\nname="x"\nversion="1"\narch="all"\nsha256="short"\n'
                                  'size=1\nfilename="f"\n'])
def test_a_damaged_lock_is_one_line(text):
    with pytest.raises(PackageError, match="t.lock"):
        pkglock.loads(text, "t.lock")

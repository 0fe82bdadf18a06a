"""What --cluster names: a scheduler's address or a local cluster, and one line for anything else."""

import pytest

from appliance.errors import ApplianceError
from appliance.fleet import address


def test_addresses_a_scheduler_or_a_local_cluster():
    assert address.parse("tcp://10.0.0.5:8786") == address.Address("tcp://10.0.0.5:8786")
    assert address.parse(" local:3 ").local_workers == 3 and address.parse("local:3").local
    assert str(address.parse("local:2")) == "local:2"



@pytest.mark.parametrize("bad", ["8786", "tcp://host", "http://h:1", "local:0", "local:x", "tcp://h:99999", "local:65"])
def test_bad_addresses_say_what_one_looks_like(bad):
    with pytest.raises(ApplianceError, match="tls://HOST:PORT|local:N takes"):
        address.parse(bad)

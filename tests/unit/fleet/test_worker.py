"""`appliance worker`: the connections it refuses before it starts anything."""

import io

import pytest

from appliance.errors import ApplianceError
from appliance.fleet import worker


@pytest.mark.parametrize(("where", "listen", "said"), [
    ("tcp://10.0.0.5:8786", "127.0.0.1", "the scheduler tcp://10.0.0.5:8786 is plain tcp:// to 10.0.0.5"),
    ("tcp://127.0.0.1:8786", "0.0.0.0", "the worker's --listen 0.0.0.0 is plain tcp:// to 0.0.0.0"),
    ("tls://10.0.0.5:8786", "127.0.0.1", "is tls:// but no certificates were given"),
])
def test_a_worker_refuses_a_wire_strangers_could_use_before_it_checks_anything(tmp_path, where, listen, said):
    with pytest.raises(ApplianceError, match=said):
        worker.serve(where, name=None, host_label=None, listen=listen, cache=tmp_path, log=io.StringIO())
    assert not any(tmp_path.iterdir())

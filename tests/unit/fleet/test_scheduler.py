"""`appliance scheduler`'s refusals, made before anything listens: plain TCP beyond
loopback without --insecure, tls:// without certificates, a port that is no port."""

import io

import pytest

from appliance.errors import ApplianceError
from appliance.fleet import scheduler


def test_plain_tcp_beyond_loopback_is_refused_without_insecure():
    with pytest.raises(ApplianceError, match="plain tcp:// to 0.0.0.0: anyone who can reach that port"):
        scheduler.serve("0.0.0.0", 0, tls=None, insecure=False, log=io.StringIO())


def test_a_port_that_is_no_tcp_port_is_one_line():
    with pytest.raises(ApplianceError, match="--port 70000 is not a TCP port"):
        scheduler.serve("127.0.0.1", 70000, tls=None, insecure=False, log=io.StringIO())

"""A worker's state on a real (in-process) Dask worker: pieces the client asks about and
sends land in that worker's cache, checked; a worker without a cache says so; a
cancelled run is remembered by the worker that was told."""

import dask
import pytest
from distributed import Client, LocalCluster

from appliance.errors import BundleError
from appliance.fleet import ship, state
from tests.unit.fleet.test_ship import _bundle


def connected(folder, plugins=()):
    """A client of one worker in this process, talking inproc:// (nothing listens on a
    port), its scratch space in FOLDER; PLUGINS given to the worker as `appliance worker`
    gives its state."""
    with dask.config.set({"temporary-directory": str(folder)}):  # not /tmp/dask-scratch-space
        cluster = LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None,
                               plugins=set(plugins))
    return cluster, Client(cluster)


@pytest.fixture
def client(tmp_path):
    cluster, client = connected(tmp_path)
    with cluster, client:
        yield client


def test_pieces_the_client_sends_land_in_the_workers_own_cache(tmp_path):
    cache = tmp_path / "cache"
    cluster, client = connected(tmp_path, [state.WorkerState(cache, "rack-1")])
    with cluster, client:
        _send_and_check(client, cache, tmp_path)


def _send_and_check(client, cache, tmp_path):
    ref, where = ship.ref_of(_bundle(tmp_path))
    (address,) = client.scheduler_info()["workers"]
    assert client.run(state.missing, list(ref.pieces))[address] == list(ref.pieces)
    for digest in ref.pieces:
        client.run(state.receive, digest, ship.pack(where[digest]))
    assert client.run(state.missing, list(ref.pieces))[address] == []
    assert ship.materialize(cache, ref).initrd.read_bytes() == b"i" * 50
    assert client.run(lambda dask_worker: state.of(dask_worker).host_label)[address] == "rack-1"


def test_a_worker_not_started_by_appliance_has_no_cache_and_remembers_what_was_cancelled(client):
    (address,) = client.scheduler_info()["workers"]
    with pytest.raises(BundleError, match="no bundle cache: it was not started by `appliance worker`"):
        client.run(state.missing, ["ab" * 32])
    assert client.run(state.abort, "run-7")[address] == 0  # no program of ours was running
    assert client.run(lambda dask_worker: state.of(dask_worker).cancelled("run-7"))[address]
    assert not client.run(lambda dask_worker: state.of(dask_worker).cancelled("run-8"))[address]

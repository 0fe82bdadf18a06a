"""What a worker answers for a block, on a real in-process Dask worker, before any boot:
the pieces it lacks (the client ships them and submits again), and a cancelled run."""

import pytest

from appliance.fleet import block, ship, state
from appliance.runs import bench
from tests.integration.fleet.test_state import connected
from tests.unit.fleet.test_ship import _bundle


def a_block(ref, run_id="run-1"):
    return block.Block(run_id, 3, (block.Arm(ref, bench.Plan(n=1, warmup=0)),), rounds=1, warmup=0, accel="tcg",
                       seed=1)


def test_a_worker_lacking_a_bundles_pieces_names_them_and_boots_nothing(tmp_path):
    ref, _ = ship.ref_of(_bundle(tmp_path))
    cluster, client = connected(tmp_path, [state.WorkerState(tmp_path / "cache", "rack-2")])
    with cluster, client:
        result = client.submit(block.run, a_block(ref), pure=False).result()
    assert isinstance(result, block.BlockResult) and result.number == 3
    assert ref.digest[:12] in result.missing and not result.runs and not result.error
    assert result.worker["host_name"] == "rack-2"


def test_a_block_of_a_cancelled_run_does_not_start(tmp_path):
    ref, _ = ship.ref_of(_bundle(tmp_path))
    cluster, client = connected(tmp_path, [state.WorkerState(tmp_path / "cache")])
    with cluster, client:
        client.run(state.abort, "run-9")
        with pytest.raises(block.Cancelled, match="run run-9 was cancelled"):
            client.submit(block.run, a_block(ref, "run-9"), pure=False).result()

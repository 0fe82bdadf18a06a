"""How the cluster spreads rounds: whole blocks per worker, waves that end at the looks."""

from appliance.fleet import cluster


def test_rounds_split_into_whole_blocks_per_worker():
    assert cluster.split(8, 2) == [4, 4]
    assert cluster.split(7, 3) == [3, 2, 2]
    assert cluster.split(1, 4) == [1]  # never an empty block
    assert sum(cluster.split(23, 5)) == 23



def test_waves_end_at_looks_and_keep_every_worker_busy():
    assert cluster.wave_ends(0, 8, [8], 2) == [8]
    assert cluster.wave_ends(0, 24, [8, 16, 24], 2) == [8, 16, 24]
    # tune looks after every round to save: waves still give each worker a round
    assert cluster.wave_ends(0, 6, range(1, 7), 3) == [3, 6]
    assert cluster.wave_ends(4, 8, [8], 2) == [8]  # a resumed run goes on from where it was
    assert cluster.wave_ends(8, 8, [8], 2) == []

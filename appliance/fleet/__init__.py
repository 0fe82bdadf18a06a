"""Boots spread over many hosts on Dask distributed.

The unit of work is a block: every arm of a run (base and variants) interleaved for a
few rounds on one worker, so each comparison stays within one host and the host becomes
a blocking factor in the statistics. `address` reads --cluster; `ship` moves bundles
to workers by digest; `block` is what a worker runs; `cluster` is the client's side
(waves of blocks, faults, cancelling); `worker` is `appliance worker`.
"""

"""Runs: many boots, and what can honestly be said about them.

The bench loop and its interleaving of sides (`bench`), A/B comparison and channel
cross-checks (`compare`), and the phase table (`table`). The statistics themselves
are pure and live at the top (appliance.stats), beside the results contract.

May import: the top-level modules, build and boot. Never analysis or cli.
"""

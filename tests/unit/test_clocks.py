"""Clocks and units: which clocks load the counting plugin, and where each unit's phases live."""

from appliance.clocks import Clock, Unit, unit_of


def test_only_the_wall_clock_boots_without_the_counting_plugin():
    assert [c for c in Clock if c.counts] == [Clock.INSTRUCTIONS, Clock.VIRTUAL]


def test_each_clock_decides_in_its_unit_stored_under_its_key():
    assert unit_of(Clock.WALL) is Unit.MS and Unit.MS.phases_key == "phases_ms"
    assert unit_of(Clock.INSTRUCTIONS) is unit_of(Clock.VIRTUAL) is Unit.INSTRUCTIONS
    assert Unit.INSTRUCTIONS.phases_key == "phases_insn"
    assert Clock("virtual") is Clock.VIRTUAL  # as written in results and on the command line

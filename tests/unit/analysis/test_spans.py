"""Spans: collapsed stacks and self times."""

from appliance.analysis import spans
from appliance.analysis.spans import Span
from tests.unit.analysis.sample import boot


def test_collapsed_self_times_add_up_to_the_root():
    items = boot()
    total = sum(int(line.rsplit(" ", 1)[1]) for line in spans.collapsed(items))
    assert abs(total - 5_490_000) < len(items)  # rounding to whole us per stack


def test_self_times_find_parents_by_stack_past_a_zero_length_sibling():
    from appliance.analysis.spans import self_times

    items = [Span("t", ("boot",), 0, 100), Span("t", ("boot", "early"), 0, 0),
             Span("t", ("boot", "start"), 0, 40), Span("t", ("boot", "start", "con_init"), 10, 30),
             Span("t", ("boot", "rest"), 40, 100)]
    got = self_times(items)
    assert got[("t", ("boot", "start"))] == 20 and got[("t", ("boot", "start", "con_init"))] == 20
    assert sum(got.values()) == 100

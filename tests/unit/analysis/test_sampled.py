"""Kernel profiles: symbols from nm -CS and System.map, samples, stacks, flamegraphs."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analysis import sampled, spans

NM = """\
ffffffff81000000 0000000000000040 T _stext
ffffffff81000100 0000000000000100 T start_kernel
ffffffff81000200 0000000000000080 t do_one_initcall
ffffffff81000300 0000000000000010 D some_data
                 U undefined_thing
ffffffff81000400 0000000000000200 T free_reserved_area
"""
MAP = "ffffffff81000000 T _stext\nffffffff81000100 T start_kernel\nffffffff81000200 ? __init_end\nffffffff81000300 d x\n"


def test_nm_symbols_have_bounds_and_data_is_left_out():
    symbols, problems = sampled.parse_symbols(NM)
    assert problems == []
    assert symbols.names == ["_stext", "start_kernel", "do_one_initcall", "free_reserved_area"]
    assert sampled.symbolize(symbols, 0xFFFFFFFF81000105) == "start_kernel"
    assert sampled.symbolize(symbols, 0xFFFFFFFF81000290) == "[unknown]"  # past do_one_initcall's size
    assert sampled.symbolize(symbols, 0xFFFFFFFF81000300) == "[unknown]"  # data, not code


def test_system_map_symbols_run_to_the_next_one_and_physical_addresses_map_high():
    symbols, problems = sampled.parse_symbols(MAP)
    assert problems == [] and symbols.names == ["_stext", "start_kernel"]
    assert sampled.symbolize(symbols, 0xFFFFFFFF810001F0) == "start_kernel"
    assert sampled.symbolize(symbols, 0x1000110) == "start_kernel (phys)"  # PVH entry before paging
    assert sampled.symbolize(symbols, 0x401000) == "[user]"


def test_samples_with_return_addresses_make_caller_first_stacks():
    symbols, _ = sampled.parse_symbols(NM)
    samples, problems = sampled.parse_samples(
        "# tsc ip ret...\n1000 ffffffff81000210 ffffffff81000110\n2000 0xffffffff81000410\n3000 zz\n4000\n")
    assert problems == ["line 4: not a sample (TSC IP [RET ...]): '3000 zz'",
                        "line 5: a sample needs a TSC and an instruction pointer"]
    assert sampled.stack_of(samples[0], symbols) == ("kernel", "start_kernel", "do_one_initcall")
    assert sampled.collapsed(samples + samples[:1], symbols) == [
        "kernel;start_kernel;do_one_initcall 2", "kernel;free_reserved_area 1"]


def test_flamegraph_merges_stacks_and_widths_add_up():
    lines = ["kernel;a;b 3", "kernel;a 1", "kernel;c 2"]
    graph = sampled.flamegraph_spans(lines, unit_us=10.0)
    s = {x.stack: x for x in graph}
    assert s[("kernel",)].duration_us == 60.0 and s[("kernel", "a")].duration_us == 40.0
    assert s[("kernel", "a", "b")].start_us == s[("kernel", "a")].start_us
    assert s[("kernel", "c")].start_us == s[("kernel", "a")].end_us
    assert spans.problems(graph) == []


def test_timeline_spans_follow_the_samples():
    symbols, _ = sampled.parse_symbols(NM)
    samples = [sampled.Sample(t, ip) for t, ip in ((0, 0xFFFFFFFF81000110), (1000, 0xFFFFFFFF81000110),
                                                    (2000, 0xFFFFFFFF81000410), (3000, 0xFFFFFFFF81000110))]
    timeline = sampled.timeline_spans(samples, symbols, hz=1e9)
    names = [(s.name, s.start_us, s.end_us) for s in spans.ordered(timeline)]
    assert names == [("kernel", 0.0, 4.0), ("start_kernel", 0.0, 2.0), ("free_reserved_area", 2.0, 3.0),
                     ("start_kernel", 3.0, 4.0)]


@settings(max_examples=200, deadline=None)
@given(st.text(string.printable, max_size=300), st.text(string.printable, max_size=300))
def test_no_input_crashes_the_parsers(sym_text, sample_text):
    symbols, problems = sampled.parse_symbols(sym_text)
    samples, sample_problems = sampled.parse_samples(sample_text)
    for problem in problems + sample_problems:
        assert problem.startswith("line ")
    sampled.collapsed(samples, symbols)
    assert spans.problems(sampled.timeline_spans(samples, symbols, 1e9)) == []

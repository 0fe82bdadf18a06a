"""What the verbs share: numbers checked as argparse reads them, the plan the bench
options describe, the clock against the channel, and an output checked before any boot."""

import argparse

import pytest

from appliance.boot.measure import Channel
from appliance.cli import options, output
from appliance.clocks import Clock
from appliance.errors import ApplianceError


@pytest.mark.parametrize(("kind", "text", "said"), [
    (options.fraction, "1", "a fraction between 0 and 1"), (options.fraction, "nan", "a fraction"),
    (options.count, "-1", "0 or more"), (options.count, "2.5", "not a whole number"),
    (options.positive, "inf", "a finite number above 0"), (options.positive, "x", "not a number"),
])
def test_numbers_out_of_range_are_argparses_one_line(kind, text, said):
    with pytest.raises(argparse.ArgumentTypeError, match=said):
        kind(text)


def test_numbers_in_range_are_read():
    assert (options.fraction("0.05"), options.count("0"), options.positive("1e-3")) == (0.05, 0, 0.001)


def bench_args(**given):
    p = argparse.ArgumentParser()
    options.bench_options(p)  # the boot options too
    words = [f"-{k}" if len(k) == 1 else f"--{k.replace('_', '-')}" for k in given]
    return p.parse_args([w for word, value in zip(words, given.values(), strict=True) for w in (word, str(value))])


def test_the_plan_is_what_the_options_say_and_a_huge_count_needs_yes(monkeypatch):
    monkeypatch.delenv("APPLIANCE_CLUSTER", raising=False)
    plan = options.plan_of(bench_args(n=4, warmup=1, channel="serial"))
    assert (plan.n, plan.warmup, plan.channel, plan.clock, plan.fleet) == (4, 1, Channel.SERIAL, Clock.WALL, None)
    with pytest.raises(ApplianceError, match="give --yes if you mean more than 1000"):
        options.plan_of(bench_args(n=2000))


def test_a_counting_clock_needs_the_trace_channel():
    assert options.clock_of(bench_args(clock="instructions")) is Clock.INSTRUCTIONS
    with pytest.raises(ApplianceError, match="use --channel trace"):
        options.clock_of(bench_args(clock="virtual", channel="exit"))


def test_output_paths_that_cannot_be_written_are_refused_in_one_line(tmp_path):
    assert options.output_path(str(tmp_path / "r.json")) == tmp_path / "r.json"
    assert output.results_file() == tmp_path / "r.json"  # a later failure names it
    with pytest.raises(ApplianceError, match="is a directory: give a file name"):
        options.output_path(str(tmp_path))
    with pytest.raises(ApplianceError, match="does not exist: create it first"):
        options.output_path(str(tmp_path / "no" / "r.json"))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".probe")]  # the write probe left nothing

from pathlib import Path

import pytest

from appliance.boot import tsc

VM = "processor\t: 0\ncpu MHz\t\t: 2596.146\nflags\t\t: fpu tsc constant_tsc hypervisor\n"


def test_cpuinfo_gives_the_rate_only_when_it_is_the_tsc_rate():
    assert tsc.cpuinfo_khz(VM) == 2596146
    assert tsc.cpuinfo_khz(VM.replace(" hypervisor", "")) is None  # bare metal: cpu MHz moves with cpufreq
    assert tsc.cpuinfo_khz(VM.replace(" constant_tsc", "")) is None


def test_measured_rate_is_plausible_and_agrees_with_cpuinfo_where_both_exist():
    khz = tsc.measured_khz(0.02)
    if khz is None:
        pytest.skip("executable anonymous memory refused here: the cpuinfo fallback is used")
    assert 100_000 < khz < 10_000_000
    reference = tsc.cpuinfo_khz(Path("/proc/cpuinfo").read_text())
    if reference:
        assert abs(khz - reference) / reference < 0.01


def test_only_tcg_gets_the_extra_words():
    assert tsc.runtime_cmdline("kvm") == ""
    words = tsc.runtime_cmdline("tcg")
    assert words == "" or words.startswith("tsc_early_khz=")

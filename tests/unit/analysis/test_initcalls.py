"""initcall_debug parsing on a real console (the Debian 6.1 kernel, disk template, booted
here with initcall_debug printk.time=1 ignore_loglevel), aggregation, and fuzzing."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analysis import initcalls
from tests.conftest import DATA

CONSOLE = (DATA / "initcall-debian-disk.console").read_text()


def test_real_console_parses_completely():
    p = initcalls.parse(CONSOLE)
    assert p.problems == [] and p.unfinished == []
    assert len(p.initcalls) == CONSOLE.count("] calling  ") == 678
    first = p.initcalls[0]
    assert (first.name, first.module, first.start_us, first.pid) == ("con_init", None, 174106.0, 0)
    crypto = next(c for c in p.initcalls if c.name == "crypto_algapi_init")
    assert crypto.duration_us == 209707.0  # "returned 0 after 209707 usecs"
    assert [c.start_us for c in p.initcalls] == sorted(c.start_us for c in p.initcalls)


def test_module_initcalls_carry_their_module():
    p = initcalls.parse(CONSOLE)
    modules = {c.module for c in p.initcalls if c.module}
    assert {"ext4", "virtio_blk", "virtio_mmio", "jbd2", "crc32c_generic"} <= modules
    ext4 = next(c for c in p.initcalls if c.module == "ext4")
    assert ext4.name == "ext4_init_fs" and ext4.key == "ext4_init_fs [ext4]"
    assert ext4.pid == 1  # loaded by our init, which is PID 1


def test_hand_made_lines_msecs_failures_and_unfinished():
    text = ("[    1.000000] calling  a_init+0x0/0x10 @ 1\n"
            "[    1.000100] initcall a_init+0x0/0x10 returned -19 after 100 usecs\n"
            "[    1.100000] calling  b_init+0x0/0x10 [b] @ 77\n"
            "[    1.500000] initcall b_init+0x0/0x10 [b] returned 0 after 400 msecs\n"
            "[    2.000000] calling  hang_init+0x0/0x10 @ 1\n"
            "calling  x+0x0/0x1 @ 1\n"
            "[    2.1] initcall bogus\n"
            "[    2.200000] initcall z_init+0x0/0x10 returned 0 after 5 usecs\n")
    p = initcalls.parse(text)
    a, b, z = p.initcalls
    assert (a.ret, a.duration_us, b.duration_us, b.module, b.pid) == (-19, 100.0, 400_000.0, "b", 77)
    assert p.unfinished == ["hang_init"]
    assert p.problems == ["line 6: initcall line without a printk time (boot with printk.time=1)",
                          "line 7: not an initcall_debug line: 'initcall bogus'",
                          "line 8: z_init returned without a `calling` line"]
    assert z.start_us == 2_200_000 - 5


def test_aggregate_over_boots():
    boot = initcalls.parse(CONSOLE).initcalls
    slower = [initcalls.Initcall(c.name, c.module, c.start_us, c.duration_us * 2, c.ret, c.pid, c.line) for c in boot]
    stats = initcalls.aggregate([boot, slower], kernel_ms=4600.0)
    top = stats[0]
    assert top.n == 2 and top.key == "crypto_algapi_init"
    assert top.mean_us == 1.5 * next(c.duration_us for c in boot if c.name == "crypto_algapi_init")
    assert abs(top.share - top.mean_us / 4_600_000) < 1e-12
    assert top.stddev_us > 0 and top.failed == 0
    assert [s.mean_us for s in stats] == sorted((s.mean_us for s in stats), reverse=True)


lines = st.one_of(
    st.builds(lambda s, fn, mod, pid: f"[{s:12.6f}] calling  {fn}+0x0/0x10{mod} @ {pid}",
              st.floats(0, 1e4), st.sampled_from(["a", "b", "c_init"]), st.sampled_from(["", " [m]"]),
              st.integers(0, 999)),
    st.builds(lambda s, fn, r, n, u: f"[{s:12.6f}] initcall {fn}+0x0/0x10 returned {r} after {n} {u}",
              st.floats(0, 1e4), st.sampled_from(["a", "b"]), st.integers(-99, 9), st.integers(0, 10**7),
              st.sampled_from(["usecs", "msecs", "secs"])),
    st.text(string.printable, max_size=40).map(lambda t: "[    0.1] " + t),
    st.text(max_size=40))


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=50))
def test_no_input_crashes_the_parser(text_lines):
    text = "\n".join(text_lines)
    p = initcalls.parse(text)
    count = len(text.splitlines())
    for problem in p.problems:
        assert 1 <= int(problem.split()[1].rstrip(":")) <= count
    assert all(c.duration_us >= 0 for c in p.initcalls)


def test_a_kernel_without_kallsyms_prints_addresses_which_a_system_map_names():
    text = ("[    0.310000] calling  0xffffffff818c7b0d @ 1\n"
            "[    0.314000] initcall 0xffffffff818c7b0d returned 0 after 4000 usecs\n")
    p = initcalls.parse(text)
    assert p.problems == [] and p.initcalls[0].name == "0xffffffff818c7b0d"
    named = initcalls.symbolize(p.initcalls, {0xFFFFFFFF818C7B0D: "virtio_mmio_init"}.get)
    assert named[0].name == "virtio_mmio_init" and named[0].duration_us == 4000.0
    assert initcalls.symbolize(p.initcalls, lambda a: None)[0].name == "0xffffffff818c7b0d"


TRACE = """# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
     swapper/0-1       [000] .....     0.191234: initcall_start: func=con_init+0x0/0x22c
     swapper/0-1       [000] .....     0.193456: initcall_finish: func=con_init+0x0/0x22c ret=0
     swapper/0-1       [000] .....     0.200000: initcall_start: func=hangs+0x0/0x10
       modprobe-80      [000] .....     2.000000: initcall_start: func=virtio_blk_init+0x0/0x1000 [virtio_blk]
       modprobe-80      [000] .....     2.000500: initcall_finish: func=virtio_blk_init+0x0/0x1000 [virtio_blk] ret=-19
     swapper/0-1       [000] .....     2.100000: initcall_finish: func=lost+0x0/0x10 ret=0
"""


def test_the_ftrace_buffer_gives_the_same_initcalls_as_the_console_would():
    parsed = initcalls.parse_trace(TRACE)
    assert [(c.key, c.start_us, c.duration_us, c.ret, c.pid) for c in parsed.initcalls] == [
        ("con_init", 191234.0, 2222.0, 0, 1), ("virtio_blk_init [virtio_blk]", 2000000.0, 500.0, -19, 80)]
    assert parsed.unfinished == ["hangs"]
    assert parsed.problems == ["line 9: lost finished without initcall_start (buffer wrapped?)"]


# Written the way Debian 6.1's console is: console initcalls `@ 0` inside start_kernel,
# long before kernel_init's first `@ 1`; jiffy durations (0, 4000 us) before the
# clocksource switch; two different functions named xenbus_init.
DISTRO = """[    0.021000] calling  con_init+0x0/0x22c @ 0
[    0.023500] initcall con_init+0x0/0x22c returned 0 after 0 usecs
[    0.024000] calling  univ8250_console_init+0x0/0x2b @ 0
[    0.024100] initcall univ8250_console_init+0x0/0x2b returned 0 after 0 usecs
[    0.200000] calling  init_mmap_min_addr+0x0/0x20 @ 1
[    0.200400] initcall init_mmap_min_addr+0x0/0x20 returned 0 after 4000 usecs
[    0.200500] calling  xenbus_init+0x0/0x3a0 @ 1
[    0.200600] initcall xenbus_init+0x0/0x3a0 returned -19 after 0 usecs
[    0.300000] calling  xenbus_init+0x0/0x65 @ 1
[    0.301000] initcall xenbus_init+0x0/0x65 returned -19 after 1000 usecs
[    0.400000] calling  late_thing+0x0/0x10 @ 1
[    0.400300] initcall late_thing+0x0/0x10 returned 0 after 300 usecs
"""


def test_two_functions_of_one_name_stay_apart_by_their_size():
    calls = initcalls.parse(DISTRO).initcalls
    keys = [c.key for c in calls if c.name == "xenbus_init"]
    assert keys == ["xenbus_init (0x3a0)", "xenbus_init (0x65)"]
    stats = initcalls.aggregate([calls, calls], 1000.0)
    assert {s.key: s.n for s in stats}["xenbus_init (0x65)"] == 2  # per function across boots, not n=4
    same_size = DISTRO.replace("0x65", "0x3a0")
    assert [c.key for c in initcalls.parse(same_size).initcalls if c.name == "xenbus_init"] == [
        "xenbus_init (#1)", "xenbus_init (#2)"]


def test_jiffy_durations_are_flagged_and_placed_by_printk_times():
    calls = {c.key: c for c in initcalls.parse(DISTRO).initcalls}
    mmap = calls["init_mmap_min_addr"]
    assert mmap.duration_us == 4000 and mmap.coarse and mmap.placed_us == 400.0
    assert calls["con_init"].coarse and calls["con_init"].placed_us == 2500.0
    assert not calls["late_thing"].coarse and calls["late_thing"].placed_us == 300.0
    assert not calls["xenbus_init (0x65)"].coarse  # 1000 us, and printk agrees


def test_the_initcall_stage_starts_at_the_first_call_kernel_init_makes():
    from appliance.analysis import bootspans

    run = {"events": [{"name": "qemu_exec", "t_ms": 0.0}, {"name": "kernel_entry", "t_ms": 10.0},
                      {"name": "linux_start_user", "t_ms": 500.0},
                      {"name": "init_start", "t_ms": 510.0}, {"name": "qemu_exit", "t_ms": 600.0}],
           "phases_ms": {}}
    console = DISTRO + "[    0.450000] Run /init as init process\n"
    spans = {s.stack: s for s in bootspans.boot_spans(run, console, initcalls.parse(console).initcalls)}
    stage = next(s for stack, s in spans.items() if stack[-1] == "initcalls")
    early = next(s for stack, s in spans.items() if stack[-1] == "start_kernel")
    offset = 500_000.0 - 450_000.0  # host us = printk us + offset
    assert stage.start_us == 200_000.0 + offset  # the first `@ 1`, not con_init's `@ 0`
    con = spans[early.stack + ("con_init",)]
    assert early.start_us <= con.start_us and con.end_us <= early.end_us
    # nothing is pushed late by a jiffy duration: xenbus_init starts at its own calling line
    assert spans[stage.stack + ("xenbus_init (0x3a0)",)].start_us == 200_500.0 + offset
    assert "4 built-in initcalls: 5.3 ms in the calls" in stage.note


REFINED = """[    0.100000] calling  a_init+0x0/0x10 @ 1
[    0.100054] initcall a_init+0x0/0x10 returned 0 after 976 usecs
[    0.100100] calling  b_init+0x0/0x10 @ 1
[    0.100150] initcall b_init+0x0/0x10 returned 0 after 1953 usecs
[    0.100200] calling  clocksource_done_booting+0x0/0x10 @ 1
[    0.101882] initcall clocksource_done_booting+0x0/0x10 returned 0 after 4418 usecs
[    0.102000] calling  c_init+0x0/0x10 @ 1
[    0.102500] initcall c_init+0x0/0x10 returned 0 after 480 usecs
[    0.102600] calling  d_init+0x0/0x10 @ 1
[    0.102700] initcall d_init+0x0/0x10 returned 0 after 90 usecs
"""


def test_coarse_durations_are_told_from_the_log_itself_and_placed_by_printk():
    """Issue 39: `% 1000` missed refined-jiffies durations (976 us on a 1024 Hz tick against
    a 54 us printk gap) and a duration longer than its own printk gap (4418 us against
    1682 us), after which the next spans started late."""
    calls = {c.name: c for c in initcalls.parse(REFINED).initcalls}
    assert calls["a_init"].jiffy_us == pytest.approx(1e6 / 1024)
    assert calls["a_init"].coarse and calls["a_init"].placed_us == pytest.approx(54)
    assert calls["b_init"].coarse and calls["b_init"].placed_us == pytest.approx(50)
    assert calls["clocksource_done_booting"].coarse  # longer than the time between its own lines
    assert calls["clocksource_done_booting"].placed_us == pytest.approx(1682)
    assert not calls["c_init"].coarse and calls["c_init"].placed_us == 480  # agrees: drawn as the kernel said
    assert not calls["d_init"].coarse
    from appliance.analysis.bootspans import _call_spans
    from appliance.analysis.spans import Span

    parent = Span("boot", ("boot", "kernel", "initcalls"), 0, 1e6, "phase")
    drawn = {s.name: s for s in _call_spans(sorted(calls.values(), key=lambda c: c.start_us), parent, 0.0)}
    assert drawn["c_init"].start_us == pytest.approx(102000)  # on time, not pushed by a 4418 us bar
    assert drawn["d_init"].start_us == pytest.approx(102600)


def test_the_footer_and_the_stage_share_one_definition():
    """Issue 39 item 7: console initcalls (`@ 0`, inside start_kernel) are not "in the
    calls" of the stage that starts at the first `@ 1` call, whatever their durations."""
    from appliance.analysis import analyze

    log = ("[    0.100000] calling  con_init+0x0/0x10 @ 0\n"
           "[    0.117000] initcall con_init+0x0/0x10 returned 0 after 17000 usecs\n"
           "[    0.200000] calling  a_init+0x0/0x10 @ 1\n"
           "[    0.200500] initcall a_init+0x0/0x10 returned 0 after 500 usecs\n"
           "[    0.300000] Run /init as init process\n")
    analysis = analyze.summarize_logs([log])
    assert analysis["initcalls_total_ms"] == pytest.approx(0.5)  # a_init's, not con_init's 17 ms
    assert analysis["initcall_stage_ms"] == pytest.approx(0.5)
    assert "17 ms" not in "\n".join(analyze.initcall_summary(analysis))

"""tslog dumps: every record type, backwards TSC, several threads, truncation, and no
input that crashes the parser."""

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.analysis import spans, tslog
from tests.conftest import DATA

HZ = 1e9  # 1 cycle = 1 ns, so 1000 cycles = 1 us
SHIFT = 450.001  # the handmade dump's line 12 runs 450,000 cycles back: later records move up by that + 1


def handmade() -> tslog.Timeline:
    return tslog.timeline((DATA / "tslog-handmade.txt").read_text(), HZ, pre_record=False)


def by_stack(p: tslog.Timeline) -> dict[tuple[str, ...], spans.Span]:
    return {s.stack: s for s in p.spans}


def test_functions_nest_per_thread_and_the_boot_thread_is_kernel():
    p = handmade()
    s = by_stack(p)
    assert p.threads["0xfffff80003a1e000"] == "kernel"
    assert p.threads["0xfffff80003c2b000"] == "intr_config_hooks"
    vm = s[("kernel", "mi_startup", "vm_mem_init")]
    assert (vm.start_us, vm.end_us) == (400.0, 1400.0)  # from the first record, 1e6 cycles
    assert s[("kernel", "hammer_time")].duration_us == 200.0


def test_backwards_tsc_is_repaired_and_reported():
    p = handmade()
    assert p.backwards == 1
    assert any("went backwards 1 time" in problem for problem in p.problems)
    times = sorted(s.start_us for s in p.spans)
    assert all(t >= 0 for t in times)
    # the repaired thread keeps its order: usb_bus_explore starts after the records before it
    usb = by_stack(p)[("usbus0", "usb_bus_explore")]
    assert usb.start_us > by_stack(p)[("intr_config_hooks", "ahci_attach")].start_us


def test_wait_is_a_frame_and_the_holder_is_attributed_under_it():
    s = by_stack(handmade())
    wait = s[("kernel", "mi_startup", "wait root_mount")]
    # line 12 went 450 us back: every later record moved up 450.001 us (SHIFT)
    assert (wait.start_us, wait.end_us) == (1700.0, 2950.0 + SHIFT)
    attributed = s[("kernel", "mi_startup", "wait root_mount", "intr_config_hooks", "ahci_attach")]
    # the last releaser held it: its frame, clipped to the wait, is where the wait went
    assert attributed.start_us == 1800.0 and attributed.track == "kernel"
    assert s[("intr_config_hooks", "hold root_mount")].kind == "event"
    assert s[("intr_config_hooks", "release root_mount")].start_us == 2900.0 + SHIFT


def test_truncation_is_detected_and_open_frames_closed_at_the_end():
    p = handmade()
    assert p.truncated
    assert any("3 frame(s) still open" in problem for problem in p.problems)
    start_init = by_stack(p)[("kernel", "mi_startup", "start_init")]
    assert start_init.end_us == p.total_us and "still open" in start_init.note
    full = tslog.timeline("0x1 10 ENTER main\n0x1 20 EXIT main\n", HZ, buffer_records=2)
    assert full.truncated and any("fill the kernel's buffer" in problem for problem in full.problems)


def test_exit_without_enter_starts_at_the_threads_first_record():
    p = tslog.timeline("0x1 100 ENTER b\n0x1 200 EXIT b\n0x1 300 EXIT a\n", HZ, pre_record=False)
    s = by_stack(p)
    assert s[("0x1", "a")].start_us == 0.0 and s[("0x1", "a", "b")].duration_us == 0.1
    assert any("line 3: EXIT a without ENTER" in problem for problem in p.problems)


def test_bad_lines_are_reported_with_their_number_and_skipped():
    text = "0x1 100 ENTER main\nnot a record\n0x1 150 EVENT NAP x\n0x1 200 EXIT main\n"
    p = tslog.timeline(text, HZ)
    assert p.problems[:2] == ["line 2: not a tslog record: 'not a record'",
                              "line 3: EVENT must be HOLD/RELEASE/WAIT/UNWAIT with a topic, got 'NAP'"]
    assert by_stack(p)[("kernel", "main")].duration_us == 0.1


def test_collapsed_stacks_are_self_times():
    lines = spans.collapsed(handmade().spans)
    weights = dict(line.rsplit(" ", 1) for line in lines)
    assert weights["kernel;mi_startup;vm_mem_init"] == "1000"
    assert weights["kernel;mi_startup;wait root_mount;intr_config_hooks;ahci_attach"] == "1450"  # 1000 + SHIFT
    assert all(int(w) >= 1 for w in weights.values())


records = st.builds(
    lambda td, tsc, kind, name, arg: f"{td} {tsc} {kind} {name} {arg}".rstrip(),
    st.sampled_from(["0x1", "0x2", "0xff", "zz"]), st.integers(0, 10**6),
    st.sampled_from(["ENTER", "EXIT", "THREAD", "EVENT", "BOGUS"]),
    st.sampled_from(["main", "f", "g", "HOLD", "RELEASE", "WAIT", "UNWAIT", ""]),
    st.sampled_from(["", "t1", "t2"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(records, st.text(string.printable, max_size=30)), max_size=60))
def test_no_input_crashes_the_parser_and_spans_stay_well_formed(lines):
    p = tslog.timeline("\n".join(lines), HZ)
    assert spans.problems(p.spans) == []
    assert all(s.end_us >= s.start_us >= 0 for s in p.spans)
    for problem in p.problems:
        if problem.startswith("line "):
            assert 1 <= int(problem.split()[1].rstrip(":")) <= len("\n".join(lines).splitlines())


USER = ('1 0 1000000 0 "/sbin/init" ""\n'
        '20 1 1500000 4500000 "/bin/sh" "/etc/rc"\n'
        '21 20 1600000 2600000 "" "/etc/rc.d/devd"\n'
        '22 20 2700000 9000000 "" ""\n'
        '23 20 0 0 "/never" ""\n'
        'bad line\n')


def test_tslog_user_processes_nest_and_are_named_and_cut_at_their_parents_end():
    items, problems = tslog.user_spans(USER, HZ)
    assert problems == ["line 6: not a tslog_user record: 'bad line'"]
    s = {x.stack: x for x in items}
    sh = s[("/sbin/init [1]", "/bin/sh [20]")]
    assert (sh.start_us, sh.end_us) == (500.0, 3500.0)
    assert ("/sbin/init [1]", "/bin/sh [20]", "/etc/rc.d/devd [21]") in s  # named by its first lookup
    orphan = s[("/sbin/init [1]", "/bin/sh [20]", "/bin/sh [22]")]  # no exec, no lookup: its parent's name
    assert orphan.end_us == sh.end_us  # ran on after its parent: cut there
    assert s[("/sbin/init [1]",)].end_us == 8000.0  # still running: to the end of the log
    assert not any("never" in x.name for x in items)
    assert spans.problems(items) == []


def test_a_linux_process_timeline_goes_through_the_tslog_user_reader():
    from appliance import guestlog

    procs = [guestlog.Process(80, 1, 1_000, 1_500, 9_000, "/bin/forker", 0),
             guestlog.Process(81, 80, 2_000, 2_100, 3_000, "/bin/forker child 1", 256)]
    text = guestlog.to_tslog_user(procs)
    assert text.splitlines()[1] == '81 80 2000 3000 "/bin/forker" ""'
    items, problems = tslog.user_spans(text, 1e9)
    assert problems == []
    assert {x.stack for x in items} == {("/bin/forker [80]",), ("/bin/forker [80]", "/bin/forker [81]")}


def test_deep_unclosed_nesting_costs_linear_work_and_says_what_it_left_out():
    # 20k ENTERs that never EXIT (a dump that lost its EXITs): every frame would be drawn
    # at its own depth, the square of the depth in stack entries; frames past MAX_DEPTH
    # are counted instead, so the spans stay a bounded multiple of the records
    lines = ["0x1 1 ENTER mi_startup"] + [f"0x1 {10 + i} ENTER f{i}" for i in range(20000)]
    prof = tslog.timeline("\n".join(lines) + "\n", 1e9, pre_record=False)
    drawn = [s for s in prof.spans if s.kind == "function"]
    assert len(drawn) == tslog.MAX_DEPTH and max(len(s.stack) for s in drawn) == tslog.MAX_DEPTH + 1
    assert f"{20001 - tslog.MAX_DEPTH} frame(s) nested deeper than {tslog.MAX_DEPTH} were not drawn" in " ".join(
        prof.problems)
    assert prof.truncated


def test_frames_keep_their_argument_so_two_devices_are_two_frames():
    text = ("0x1 100 ENTER mi_startup\n0x1 200 ENTER config_attach_internal mainbus\n"
            "0x1 300 EXIT config_attach_internal mainbus\n0x1 400 ENTER config_attach_internal ioapic\n"
            "0x1 900 EXIT config_attach_internal ioapic\n0x1 950 ENTER start_init\n0x1 990 EXIT mi_startup\n")
    p = tslog.timeline(text, 1e6, pre_record=False)  # a cycle a microsecond
    named = by_stack(p)
    mainbus = named[("kernel", "mi_startup", "config_attach_internal mainbus")]
    ioapic = named[("kernel", "mi_startup", "config_attach_internal ioapic")]
    assert (mainbus.duration_us, ioapic.duration_us) == (100.0, 500.0)
    collapsed = spans.collapsed(p.spans)
    assert "kernel;mi_startup;config_attach_internal mainbus 100" in collapsed
    assert "kernel;mi_startup;config_attach_internal ioapic 500" in collapsed
    assert not any(problem.startswith("no start_init record") for problem in p.problems)


def test_the_time_before_the_first_record_is_its_own_frame_unless_left_out():
    text = "0x1 5000 ENTER mi_startup\n0x1 6000 EXIT mi_startup\n"
    p = tslog.timeline(text, HZ)
    before = by_stack(p)[("kernel", tslog.BEFORE)]
    assert (before.start_us, before.end_us) == (0.0, 5.0) and p.total_us == 6.0
    assert by_stack(p)[("kernel", "mi_startup")].start_us == 5.0
    assert "no start_init record: the profile ends at the last record and may be truncated" in p.problems
    left_out = tslog.timeline(text, HZ, pre_record=False)
    assert ("kernel", tslog.BEFORE) not in by_stack(left_out) and left_out.total_us == 1.0


# NetBSD's tslog: ENTER carries the device, EXIT only the function (as a real MICROVM
# dump does); FreeBSD's names both. Both must give the same stacks and times.
NETBSD = """0x1 100 ENTER main
0x1 150 ENTER config_attach_internal mainbus
0x1 200 ENTER config_attach_internal cpu
0x1 260 EXIT config_attach_internal
0x1 300 ENTER config_attach_internal ioapic
0x1 420 EXIT config_attach_internal
0x1 500 EXIT config_attach_internal
0x1 600 ENTER start_init
0x1 700 EXIT start_init
0x1 800 EXIT main
"""
FREEBSD = """0x1 100 ENTER main
0x1 150 ENTER config_attach_internal mainbus
0x1 200 ENTER config_attach_internal cpu
0x1 260 EXIT config_attach_internal cpu
0x1 300 ENTER config_attach_internal ioapic
0x1 420 EXIT config_attach_internal ioapic
0x1 500 EXIT config_attach_internal mainbus
0x1 600 ENTER start_init
0x1 700 EXIT start_init
0x1 800 EXIT main
"""


def test_netbsd_exits_without_their_argument_close_the_innermost_frame_of_that_function():
    netbsd, freebsd = (tslog.timeline(text, 1e6, pre_record=False) for text in (NETBSD, FREEBSD))
    assert netbsd.problems == [] and freebsd.problems == []
    got = {(s.stack, s.start_us, s.end_us) for s in netbsd.spans}
    assert got == {(s.stack, s.start_us, s.end_us) for s in freebsd.spans}
    named = by_stack(netbsd)
    mainbus = ("kernel", "main", "config_attach_internal mainbus")
    assert named[mainbus + ("config_attach_internal cpu",)].duration_us == 60.0
    assert named[mainbus + ("config_attach_internal ioapic",)].duration_us == 120.0
    assert named[mainbus].duration_us == 350.0
    # main does not nest inside itself, and every stack is one of these
    assert sorted(len(s.stack) for s in netbsd.spans if s.kind == "function") == [2, 3, 3, 4, 4]


def test_the_time_before_the_first_record_lies_inside_the_kernel_threads_root():
    p = tslog.timeline("0x1 5000 ENTER mi_startup\n0x1 6000 EXIT mi_startup\n", HZ)
    root = by_stack(p)[("kernel",)]
    before = by_stack(p)[("kernel", tslog.BEFORE)]
    assert root.start_us <= before.start_us and before.end_us <= root.end_us
    assert (root.start_us, root.end_us) == (0.0, 6.0)


def test_freebsds_threadless_early_records_belong_to_the_boot_thread():
    text = "0x0 400 ENTER hammer_time\n0x0 900 EXIT hammer_time\n0x1 1000 ENTER mi_startup\n0x1 2000 EXIT mi_startup\n"
    p = tslog.timeline(text, 1e6)
    assert p.threads == {"0x0": "kernel", "0x1": "kernel"}
    assert "kernel;hammer_time 500" in spans.collapsed(p.spans) and "kernel 100" in spans.collapsed(p.spans)
    assert spans.problems(p.spans) == []

"""profiled's records on the host: parsing (also of truncated and garbage streams),
memory per stage, the process timeline and the kernel log as text."""

import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import guestlog
from appliance.analysis import bootspans, spans


def rec(t, kind, **body):
    return json.dumps({"v": 1, "t": t, "type": kind, **body})


MEM = dict(MemTotal=208868, MemFree=183068, MemAvailable=186132, Buffers=0, Cached=64, Shmem=64,
           SReclaimable=8696, Slab=14200)
STREAM = "\n".join([
    rec(1_000_000, "hello", pid=79, kmsg=1, proc_events=1, sample_ms=0),
    rec(1_010_000, "mem", stage="init_start", **MEM),
    rec(1_020_000, "proc", event="fork", pid=80, ppid=1),
    rec(1_021_000, "proc", event="exec", pid=80, path="/bin/forker"),
    rec(1_030_000, "proc", event="fork", pid=81, ppid=80),
    rec(1_031_000, "proc", event="exec", pid=81, path="/bin/forker child 1"),
    rec(1_050_000, "proc", event="exit", pid=81, status=256),
    rec(1_060_000, "proc", event="exit", pid=80, status=0),
    rec(1_070_000, "mem", stage="payload_end", **{**MEM, "MemFree": 180000}),
    rec(1_080_000, "kmsg", seq=1, level=6, facility=0, ts_us=1234567, msg="second"),
    rec(1_080_001, "kmsg", seq=0, level=5, facility=0, ts_us=0, msg="Linux version 6.1"),
    rec(1_090_000, "end", records=12, dropped=0),
]) + "\n"


def test_a_complete_stream():
    log = guestlog.parse(STREAM)
    assert log.complete and log.problems == []
    memory = guestlog.memory(log)
    assert list(memory) == ["init_start", "payload_end"]
    assert memory["init_start"]["used_kib"] == 208868 - 183068 - (0 + 64 + 8696)
    procs = guestlog.processes(log)
    assert [(p.pid, p.ppid, p.path, p.status) for p in procs] == [(80, 1, "/bin/forker", 0),
                                                                  (81, 80, "/bin/forker child 1", 256)]
    assert procs[1].fork_ns < procs[1].exec_ns < procs[1].exit_ns
    assert guestlog.kernel_log_text(log) == "[    0.000000] Linux version 6.1\n[    1.234567] second\n"
    summary = guestlog.summary(log)
    assert summary["proc_events"] and summary["kmsg_records"] == 2 and summary["complete"]


def test_process_spans_nest_children_under_parents():
    procs = guestlog.processes(guestlog.parse(STREAM))
    items = bootspans.process_spans(procs, offset_us=5000.0, end_us=10_000.0)
    s = {x.stack: x for x in items}
    assert set(s) == {("/bin/forker [80]",), ("/bin/forker [80]", "/bin/forker [81]")}
    child = s[("/bin/forker [80]", "/bin/forker [81]")]
    assert (child.start_us, child.end_us) == (5000.0 + 1030.0, 5000.0 + 1050.0)
    assert spans.problems(items) == []
    running = guestlog.processes(guestlog.parse(STREAM.replace('"event": "exit", "pid": 80', '"event": "x", "pid": 80')))
    parent = {x.stack: x for x in bootspans.process_spans(running, 5000.0, 10_000.0)}[("/bin/forker [80]",)]
    assert parent.end_us == 10_000.0  # no exit seen: it runs to the end of the boot


def test_truncated_stream_is_reported_not_fatal():
    cut = STREAM[:STREAM.index('"type": "kmsg"') + 20]
    log = guestlog.parse(cut)
    assert not log.complete
    assert log.problems[0].startswith("line 10: cut off (the stream ended mid-record)")
    assert log.problems[-1].startswith("truncated: no end record")
    assert len(guestlog.processes(log)) == 2  # what arrived is kept


def test_garbage_and_foreign_versions_are_reported_with_line_numbers():
    text = "garbage\n" + rec(1, "mem", stage="x") + "\n" + json.dumps({"v": 2, "t": 5, "type": "mem"}) + \
        "\n" + json.dumps({"v": 1, "t": "x", "type": "mem"}) + "\n" + rec(9, "end", records=5, dropped=3, kmsg_lost=2) + "\n"
    log = guestlog.parse(text)
    assert log.problems == [
        "line 1: not a JSON record: 'garbage'",
        "line 3: record version 2, this tool reads 1",
        "line 4: not a profiled record (type and integer t needed)",
        "the end record counts 5 records, 2 arrived",
        "profiled dropped 3 record(s): its buffer was full",
        "the kernel log wrapped 2 time(s) before profiled read it: boot with a larger log_buf_len=",
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(string.printable, max_size=60),
    st.builds(rec, st.integers(0, 10**12), st.sampled_from(guestlog.TYPES),
              event=st.sampled_from(["fork", "exec", "exit", "x"]), pid=st.integers(-5, 100),
              ppid=st.one_of(st.none(), st.integers(0, 100)), stage=st.text(max_size=5))), max_size=40))
def test_no_stream_crashes_the_parser(lines):
    text = "\n".join(lines)
    log = guestlog.parse(text)
    guestlog.summary(log)
    guestlog.kernel_log_text(log)
    assert spans.problems(bootspans.process_spans(guestlog.processes(log), 0.0, 1e9)) == []
    for problem in log.problems:
        if problem.startswith("line "):
            assert 1 <= int(problem.split()[1].rstrip(":")) <= len(text.split("\n"))

"""A boot's spans on the host timeline: phases, initcalls and modules nested, and the timeline drawn from them."""

import pytest

from appliance.analysis import bootspans, spans
from tests.unit.analysis.sample import CONSOLE, boot


def test_boot_spans_nest_phases_initcalls_and_modules_on_the_host_timeline():
    items = boot()
    assert spans.problems(items) == []
    s = {x.stack: x for x in items}
    kernel = s[("boot", "kernel")]
    assert (kernel.start_us, kernel.end_us) == (43_000.0, 5_150_000.0)
    group = s[("boot", "kernel", "initcalls")]
    crypto = s[("boot", "kernel", "initcalls", "crypto_algapi_init")]
    assert group.start_us <= crypto.start_us and crypto.end_us <= group.end_us
    assert crypto.duration_us == 209707.0
    # "Run /init" is at printk 1.605... and anchors to init_start (no linux_start_user here)
    assert s[("boot", "kernel", "early boot")].end_us == pytest.approx(5_150_000.0 - bootspans.printk_anchor(CONSOLE))
    load = s[("boot", "userspace", "init", "load ext4")]
    assert load.start_us == pytest.approx(5_150_000.0 + (1_800_000_000 - 1_695_015_769) / 1000)
    assert s[("boot", "userspace", "init", "load ext4", "ext4_init_fs")].end_us == load.end_us
    # the init span is the phase table's init: init_start -> payload_start, no further
    assert (s[("boot", "userspace", "init")].start_us, s[("boot", "userspace", "init")].end_us) == (
        5_150_000.0, 5_410_000.0)
    assert s[("boot", "userspace")].end_us == 5_450_000.0  # init and payload together: "userspace"


def test_timeline_marks_the_longest_and_keeps_phases():
    rows = bootspans.timeline(boot())
    text = bootspans.render_timeline(rows)
    assert "<- longest" in text.splitlines()[[r.name for r in rows].index("early boot") + 1]
    assert {"qemu", "firmware", "kernel", "init", "payload"} <= {r.name for r in rows}

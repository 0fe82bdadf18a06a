"""analyze's boots before and after they run: the debug session's words and consoles,
the plain baseline, and which run set the document describes."""

from appliance.boot.accel import AccelChoice
from appliance.machines import Accel
from appliance.runs.bench import Plan, Session
from appliance.runs.debugboots import DebugBoots
from tests.unit.runs.test_compare import fake_run
from tests.unit.runs.test_costboots import cpio_bundle

TCG = AccelChoice(Accel.TCG, "test")


def booted(target, words, baseline=True):
    debug = Session(target, TCG, Plan(n=2, warmup=1, keep_consoles=True, extra_cmdline=words))
    plain = Session(target, TCG, Plan(n=2, warmup=1)) if baseline else None
    for session in (debug, plain):
        if session is not None:
            session.runs = [fake_run(0, 5000, 20, warmup=True), fake_run(1, 4000, 20), fake_run(2, 4050, 20)]
            session.consoles = ["warm", "log 1", "log 2"]
    return DebugBoots(debug, plain, {"host_name": "here"})


def test_the_debug_boots_keep_their_consoles_and_the_plain_ones_make_the_document(tmp_path):
    boots = booted(cpio_bundle(tmp_path / "b"), "initcall_debug")
    assert [console for _, console in boots.counted_debug()] == ["log 1", "log 2"]
    assert [r["index"] for r in boots.counted_plain()] == [1, 2]
    doc = boots.run_set()
    assert doc["settings"]["extra_cmdline"] == "" and doc["host"] == {"host_name": "here"} and doc["complete"]


def test_without_a_baseline_the_debug_boots_are_the_document(tmp_path):
    boots = booted(cpio_bundle(tmp_path / "b"), "initcall_debug", baseline=False)
    assert boots.counted_plain() is None
    assert boots.run_set()["settings"]["extra_cmdline"] == "initcall_debug"

"""The analysis verbs on a real log: initcalls with every export, a log cut by an oops, modules after init."""

import json

from tests.unit.analysis.sample import CONSOLE


def test_the_initcalls_verb_reads_a_log_and_refuses_one_without_initcalls(tmp_path, capsys):
    from appliance.cli import main as cli

    log = tmp_path / "dmesg.txt"
    log.write_text(CONSOLE)
    assert cli.main(["initcalls", str(log), "--svg", str(tmp_path / "k.svg"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["analysis"]["initcalls"][0]["key"] and data["outputs"]["svg"] == str(tmp_path / "k.svg")
    (tmp_path / "plain.txt").write_text("[    0.000000] Linux version 6.1\n[    1.000000] Run /init as init process\n")
    assert cli.main(["initcalls", str(tmp_path / "plain.txt")]) == 1
    assert "no initcall_debug lines" in capsys.readouterr().err


def test_every_export_of_the_debian_log_sums_to_the_boot(tmp_path, capsys):
    """Issue 39: start_kernel's self time was its whole span while its `@ 0` console
    initcalls were listed too (a zero-length "early boot" sibling hid the parent): the
    collapsed file summed to 17-25 ms more than the boot."""
    from appliance.cli import main as cli

    log = tmp_path / "dmesg.txt"
    log.write_text(CONSOLE)
    collapsed, trace, speed = tmp_path / "c.txt", tmp_path / "t.json", tmp_path / "s.json"
    assert cli.main(["initcalls", str(log), "--collapsed", str(collapsed), "--chrome", str(trace),
                     "--speedscope", str(speed), "--json"]) == 0
    boot_us = max(s["end_us"] for s in json.loads(capsys.readouterr().out)["analysis"]["spans"])
    lines = [line for line in collapsed.read_text().splitlines() if line.startswith("boot")]  # the boot's track
    assert abs(sum(int(line.rsplit(" ", 1)[1]) for line in lines) - boot_us) <= len(lines)  # whole-us rounding
    assert any(line.startswith("boot;kernel;start_kernel;con_init ") for line in lines)
    profile = json.loads(speed.read_text())["profiles"][0]
    assert profile["endValue"] - profile["startValue"] == boot_us
    events = json.loads(trace.read_text())["traceEvents"]
    root = [e for e in events if e.get("name") == "boot" and e["ph"] in "BE"]
    assert root[-1]["ts"] - root[0]["ts"] == boot_us


def test_a_boot_that_crashed_in_an_initcall_gets_its_picture_up_to_the_crash(tmp_path, capsys):
    """Issue 39: a log ending in an oops got one "kernel" bar and a made-up userspace."""
    from appliance.cli import main as cli

    lines = CONSOLE.splitlines()
    cut = [i for i, line in enumerate(lines) if "calling  " in line and "@ 1" in line][300]
    stamp = lines[cut].split("]")[0]
    log = tmp_path / "oops.txt"
    log.write_text("\n".join([*lines[:cut + 1], f"{stamp}] BUG: kernel NULL pointer dereference, address: 8"]) + "\n")
    collapsed = tmp_path / "c.txt"
    assert cli.main(["initcalls", str(log), "--collapsed", str(collapsed), "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out)["analysis"]
    stacks = [tuple(s["stack"]) for s in analysis["spans"]]
    assert ("boot", "userspace") not in stacks
    assert ("boot", "kernel", "stopped") in stacks and ("boot", "kernel", "initcalls", "oom_init") in stacks
    hung = [s for s in stacks if s[-1].endswith("(never returned)")]
    assert hung == [("boot", "kernel", "initcalls", "eventpoll_init (never returned)")]
    assert analysis["unfinished"] == ["eventpoll_init"]
    assert sum(1 for line in collapsed.read_text().splitlines() if ";initcalls;" in line) > 50
    assert cli.main(["initcalls", str(log)]) == 0
    assert "STOPPED at" in capsys.readouterr().out


def test_modules_initcalls_after_init_are_drawn_on_tracks_of_their_own(tmp_path, capsys):
    """Issue 39: 3.0 s of module initcalls after "Run /init" were in the table but in no
    chart or export. Now a bar in userspace and each call on a modules track."""
    from appliance.cli import main as cli

    log = tmp_path / "dmesg.txt"
    log.write_text(CONSOLE)
    assert cli.main(["initcalls", str(log), "--json"]) == 0
    analysis = json.loads(capsys.readouterr().out)["analysis"]
    modules = [s for s in analysis["spans"] if s["track"].startswith("modules")]
    in_table = [c for c in analysis["initcalls"] if c.get("module")]
    assert in_table and len(modules) == len(in_table)
    bar = next(s for s in analysis["spans"] if s["stack"] == ["boot", "userspace", "module initcalls"])
    assert bar["start_us"] <= min(s["start_us"] for s in modules) and bar["end_us"] >= max(s["end_us"] for s in modules)
    for track in {s["track"] for s in modules}:  # calls on one track never overlap
        mine = sorted((s for s in modules if s["track"] == track), key=lambda s: s["start_us"])
        assert all(a["end_us"] <= b["start_us"] for a, b in zip(mine, mine[1:], strict=False))

"""Kernel logs in every form the kernel and its tools write read as the console's own
(issue 39: a `<7>[ 1.234567]` log was refused as having no printk times)."""

import pytest

from appliance.analysis import initcalls, kmsg

CONSOLE = """[    1.234567] calling  foo_init+0x0/0x40 @ 1
[    1.234600] initcall foo_init+0x0/0x40 returned 0 after 30 usecs
"""

FORMS = {
    "level": ("<7>[    1.234567] calling  foo_init+0x0/0x40 @ 1\n"
              "<7>[    1.234600] initcall foo_init+0x0/0x40 returned 0 after 30 usecs\n"),
    "caller": ("[    1.234567] [    T1] calling  foo_init+0x0/0x40 @ 1\n"
               "[    1.234600] [    T1] initcall foo_init+0x0/0x40 returned 0 after 30 usecs\n"),
    "journal": ("[    1.234567] buildhost kernel: calling  foo_init+0x0/0x40 @ 1\n"
                "[    1.234600] buildhost kernel: initcall foo_init+0x0/0x40 returned 0 after 30 usecs\n"),
    "decoded": ("kern  :debug : [    1.234567] calling  foo_init+0x0/0x40 @ 1\n"
                "kern  :debug : [    1.234600] initcall foo_init+0x0/0x40 returned 0 after 30 usecs\n"),
}


@pytest.mark.parametrize("form", FORMS)
def test_each_form_reads_as_the_console(form):
    log = kmsg.normalize(FORMS[form])
    assert log.forms == (form,) and log.stamped == 2
    assert log.text == CONSOLE
    parsed = initcalls.parse(log.text)
    assert [(c.name, c.duration_us) for c in parsed.initcalls] == [("foo_init", 30.0)] and not parsed.problems


def test_a_serial_capture_with_cr_lf_colours_and_levels_and_callers_at_once():
    raw = "\x1b[0;32m<6>[    1.234567] [    C0] calling  foo_init+0x0/0x40 @ 1\x1b[0m\r\n" \
          "<6>[    1.234600] [    C0] initcall foo_init+0x0/0x40 returned 0 after 30 usecs\r\n"
    log = kmsg.normalize(raw)
    assert log.text == CONSOLE and set(log.forms) == {"level", "caller", "ansi", "cr"}
    assert "syslog levels" in log.described() and "caller ids" in log.described()


def test_the_consoles_own_form_is_kept_as_it_is():
    log = kmsg.normalize(CONSOLE + "Run /init as init process\n")
    assert log.forms == () and log.described() == "console (printk times)" and log.stamped == 2
    assert log.text == CONSOLE + "Run /init as init process\n"


def test_initcalls_reads_a_dmesg_r_log_as_it_reads_the_console(tmp_path, capsys):
    import json

    from appliance.cli import main as cli
    from tests.unit.analysis.sample import CONSOLE as DEBIAN

    found = {}
    for name, text in (("console", DEBIAN), ("raw", "".join(f"<7>{line}\r\n" for line in DEBIAN.splitlines()))):
        log = tmp_path / f"{name}.log"
        log.write_text(text)
        assert cli.main(["initcalls", str(log), "--json"]) == 0
        out = capsys.readouterr()
        found[name] = json.loads(out.out)["analysis"]
        assert ("read as syslog levels" in out.err) == (name == "raw")
    assert found["raw"]["initcalls"] == found["console"]["initcalls"] and len(found["raw"]["initcalls"]) > 600

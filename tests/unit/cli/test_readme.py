"""The README's commands exist as written: its `appliance` verbs and their flags, and
the `scons` options it names."""

import re
import shlex

from appliance.cli import main as cli
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"`([^`\n]+)`", README) + [
    line for block in re.findall(r"```sh\n(.*?)```", README, re.S) for line in block.splitlines()]


def commands(program: str) -> list[list[str]]:
    found = []
    for snippet in SNIPPETS:
        for part in re.split(r"&&|;|\|", snippet.split("#")[0]):
            words = part.split()
            words = [w.removeprefix(".venv/bin/") for w in words]
            if words and words[0] == program:
                found.append(words[1:])
    return found


def test_every_appliance_verb_and_flag_in_the_readme_exists():
    verbs = cli.parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    seen = 0
    for words in commands("appliance"):
        if not words or words[0].startswith("-") or words[0] in ("ARTIFACT", "BUNDLE", "..."):
            continue
        assert words[0] in verbs, f"README names `appliance {words[0]}`"
        flags = {s for a in verbs[words[0]]._actions for s in a.option_strings}
        for flag in (w.split("=")[0] for w in words[1:] if w.startswith("--")):
            assert flag in flags, f"README gives `appliance {words[0]} {flag}`"
        seen += 1
    assert seen >= 15  # the README shows most verbs: the check is only worth it if it reads them


def test_every_scons_option_in_the_readme_exists():
    options = set(re.findall(r'options\.Add\("([A-Z_]+)"', (ROOT / "SConstruct").read_text()))
    named = {w.split("=")[0] for words in commands("scons") for w in words if re.match(r"^[A-Z_]+=", w)}
    assert named and named <= options, named - options
    assert {w for words in commands("scons") for w in words if not w.startswith("-") and "=" not in w
            and w.islower()} <= {"appliance", "release", "firmware"}


def test_shlex_reads_every_command():  # a README snippet with unbalanced quotes is a broken command
    for words in commands("appliance") + commands("scons"):
        shlex.split(" ".join(words))

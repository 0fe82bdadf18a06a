"""Kernel configuration as data: fragments, merging, and the check kconfig does not do.

`make olddefconfig` silently drops any symbol whose dependencies are not met, so a
fragment can ask for CONFIG_VIRTIO_BLK=y and get a kernel without it. `dropped()`
compares what the fragments asked for with the resolved .config, and `depends_on()`
reads the Kconfig files to say what each dropped symbol needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from appliance.errors import ApplianceError

# "CONFIG_FOO=y", "CONFIG_FOO="text"", and the "not set" comment, which means n.
_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")


class KconfigError(ApplianceError):
    """A fragment is malformed, or the resolved configuration lost what was asked."""


@dataclass(frozen=True)
class Dropped:
    symbol: str
    asked: str
    got: str  # "n" when absent
    depends: tuple[str, ...]  # its "depends on" lines, when the Kconfig files were read


def parse(text: str, origin: str = "config") -> dict[str, str]:
    """Symbol -> value of a .config or fragment; later lines win, as in kconfig."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if m := _UNSET.match(line):
            values[m[1]] = "n"
        elif m := _SET.match(line):
            values[m[1]] = m[2]
        elif not line.startswith("#"):
            raise KconfigError(f"{origin}:{number}: not a kconfig line: {line!r}")
    return values


def merge(fragments: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The symbols asked for by (name, text) fragments, in order: a later fragment wins."""
    merged: dict[str, str] = {}
    for name, text in fragments:
        merged.update(parse(text, name))
    return merged


def render(values: Mapping[str, str]) -> str:
    return "".join(f"# CONFIG_{k} is not set\n" if v == "n" else f"CONFIG_{k}={v}\n" for k, v in values.items())


def overlay(base: str, asked: Mapping[str, str]) -> str:
    """BASE (a .config, e.g. from tinyconfig) with ASKED's symbols replaced in place, the
    rest appended: one line per symbol, so kconfig sees no reassignment."""
    out: list[str] = []
    seen: set[str] = set()
    for line in base.splitlines():
        m = _SET.match(line.strip()) or _UNSET.match(line.strip())
        if m and m[1] in asked:
            seen.add(m[1])
            out.append(render({m[1]: asked[m[1]]}).rstrip("\n"))
        else:
            out.append(line)
    tail = render({k: v for k, v in asked.items() if k not in seen})
    return "\n".join(out) + "\n" + tail


def dropped(asked: Mapping[str, str], resolved: Mapping[str, str],
            kconfig_text: Mapping[str, str] | None = None) -> list[Dropped]:
    """Every asked symbol the resolved configuration does not have as asked."""
    lost = []
    for symbol, want in asked.items():
        got = resolved.get(symbol, "n")
        if got != want:
            lost.append(Dropped(symbol, want, got, depends_on(symbol, kconfig_text or {})))
    return lost


_CONFIG_LINE = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_BLOCK_END = re.compile(r"^\s*(?:menu)?config\s|^\s*(?:endmenu|endif|endchoice|choice|menu|if|source|comment)\b")


def depends_on(symbol: str, kconfig_text: Mapping[str, str]) -> tuple[str, ...]:
    """The `depends on` expressions of SYMBOL's definitions in the Kconfig files (path ->
    text), plus the `if` blocks around them: enough to say why kconfig dropped it."""
    found: list[str] = []
    for text in kconfig_text.values():
        if f"config {symbol}" not in text:
            continue
        ifs: list[str] = []
        lines = text.splitlines()
        for i, line in enumerate(lines):
            stripped = line.split("#", 1)[0].strip()  # "endif # BLK_DEV"
            if stripped.startswith("if "):
                ifs.append(stripped[3:].strip())
            elif stripped == "endif" and ifs:
                ifs.pop()
            m = _CONFIG_LINE.match(line)
            if not m or m[1] != symbol:
                continue
            found += ifs
            for body in lines[i + 1:]:
                if _BLOCK_END.match(body) or body.strip() == "help":  # help text is prose
                    break
                if body.strip().startswith("depends on"):
                    found.append(body.strip().removeprefix("depends on").strip())
    return tuple(dict.fromkeys(found))


def explain(lost: list[Dropped]) -> str:
    parts = []
    for d in lost:
        need = f" (depends on {' && '.join(d.depends)})" if d.depends else ""
        parts.append(f"CONFIG_{d.symbol}={d.asked} became {d.got}{need}")
    return "; ".join(parts)


_OBJ = re.compile(r"^\s*(?P<lhs>[\w-]+?)-(?:\$\(CONFIG_(?P<sym>\w+)\)|(?P<y>y|objs))\s*[+:]?=\s*(?P<rhs>.*?)\s*(?:#.*)?$")


def makefile_symbol(makefile: str, obj: str, depth: int = 0) -> str | None:
    """The CONFIG_ symbol that builds OBJ ("foo.o") in a Kbuild MAKEFILE: `obj-$(CONFIG_X)
    += foo.o`, or through a composite object (`bar-y += foo.o`, then `obj-$(CONFIG_X) +=
    bar.o`). None when it is always built (`obj-y`) or not found."""
    text = makefile.replace("\\\n", " ")
    for line in text.splitlines():
        m = _OBJ.match(line)
        if m is None or obj not in m["rhs"].split():
            continue
        if m["lhs"] == "obj":
            return m["sym"]  # None for obj-y: always built
        if depth < 3 and m["sym"] is None:  # bar-y / bar-objs += foo.o: what builds bar.o?
            return makefile_symbol(makefile, f"{m['lhs']}.o", depth + 1)
        return m["sym"]
    return None

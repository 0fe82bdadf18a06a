"""Kernel logs in the forms the kernel and its tools write, read as one: every line with
a printk time becomes `[    S.UUUUUU] MESSAGE`, the console's own form, which the
initcall and span parsers read.

Forms recognised (several may mix in one file; each line is read on its own):
- the console's and plain `dmesg`'s:          `[    1.234567] calling ...`
- a syslog level, as `dmesg -r` and pstore write: `<7>[    1.234567] calling ...`
- `dmesg -x` (facility and level decoded):     `kern  :debug : [    1.234567] calling ...`
- a caller id (CONFIG_PRINTK_CALLER):          `[    1.234567] [    T1] calling ...` (or `[ C0]`)
- `journalctl -k -o short-monotonic`:          `[    1.234567] HOST kernel: calling ...`
- serial captures: CR LF line ends and ANSI colour codes (`ESC[0;32m`) anywhere.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-B]")
_LEVEL = re.compile(r"^<(\d{1,3})>")
_DECODED = re.compile(r"^[a-z]+\s*:[a-z]+\s*: ")
_STAMP = re.compile(r"^\[\s*(\d+)\.(\d+)\]\s?")
_CALLER = re.compile(r"^\[\s*[TC]\d+\]\s?")
_JOURNAL = re.compile(r"^\S+ kernel: ")

FORMS = {"level": "syslog levels (<N>, dmesg -r)", "decoded": "dmesg -x facility:level",
         "caller": "caller ids ([T1], [C0])", "journal": "journalctl -k -o short-monotonic",
         "ansi": "colour codes", "cr": "CR LF line ends"}


@dataclass(frozen=True)
class Log:
    text: str  # every stamped line as `[    S.UUUUUU] MESSAGE`; other lines as they were, cleaned
    stamped: int  # how many lines have a printk time
    forms: tuple[str, ...]  # what was read besides the console's own form (FORMS' keys)

    def described(self) -> str:
        """The forms read, for the user: "console" or "syslog levels (<N>, dmesg -r), ..."."""
        return ", ".join(FORMS[f] for f in self.forms) or "console (printk times)"


def normalize(raw: str) -> Log:
    """RAW (a log in any of the forms above) in the console's form."""
    seen: Counter[str] = Counter()
    lines = []
    stamped = 0
    for line in raw.split("\n"):
        if "\r" in line:
            seen["cr"] += 1
            line = line.replace("\r", "")
        if "\x1b" in line:
            seen["ansi"] += 1
            line = _ANSI.sub("", line)
        line, stamp = _one(line, seen)
        stamped += stamp
        lines.append(line)
    return Log("\n".join(lines), stamped, tuple(f for f in FORMS if seen[f]))


def _one(line: str, seen: Counter[str]) -> tuple[str, int]:
    """LINE in the console's form, and 1 if it has a printk time."""
    if (level := _LEVEL.match(line)) is not None:
        seen["level"] += 1
        line = line[level.end():]
    elif (decoded := _DECODED.match(line)) is not None and _STAMP.match(line[decoded.end():]):
        seen["decoded"] += 1
        line = line[decoded.end():]
    stamp = _STAMP.match(line)
    if stamp is None:
        return line, 0
    body = line[stamp.end():]
    if (caller := _CALLER.match(body)) is not None:
        seen["caller"] += 1
        body = body[caller.end():]
    elif (journal := _JOURNAL.match(body)) is not None:
        seen["journal"] += 1
        body = body[journal.end():]
    return f"[{int(stamp[1]):5d}.{stamp[2].ljust(6, '0')[:6]}] {body}", 1

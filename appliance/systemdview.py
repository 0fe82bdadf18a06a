"""systemd's own view of a boot and how it compares with the host's.

The report unit we add to an image booted with its own init (assemble/imageinit.py)
prints, once systemd says the boot is over, `systemd-analyze time`, `blame`,
`critical-chain` and the failed units on the console between `appliance-systemd:`
markers. `read` turns that text into a `View` for the run record; `against_host` sets
its two figures beside the host's phases of the same boot.

What the two clocks measure differs, and the comparison says how: systemd's "kernel"
runs from the kernel's clock zero (set early in start_kernel, after the firmware, the
kernel's decompression and its setup, which the host sees and the guest cannot) to
systemd's start, so it also holds our init's work in the initramfs (modules, the root,
the network): systemd sees no initrd of its own. Its "userspace" runs from systemd's start
to the end of the boot's last job; ours from the moment our init execs it (image_init) to
our report's probe after `systemctl is-system-running --wait` returned.
"""

from __future__ import annotations

import re
from statistics import median
from typing import Any, TypedDict

MARK = "appliance-systemd:"  # assemble/imageinit.py prints these
SECTIONS = ("time", "blame", "critical-chain", "failed")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SPAN = re.compile(r"(\d+(?:\.\d+)?)(h|min|ms|us|µs|s)\b")
_UNIT_MS = {"h": 3_600_000.0, "min": 60_000.0, "s": 1000.0, "ms": 1.0, "us": 0.001, "µs": 0.001}
_PART = re.compile(r"(?P<span>[\d.]+(?:h|min|ms|us|µs|s)(?: [\d.]+(?:h|min|ms|us|µs|s))*) \((?P<what>\w+)\)")
_REACHED = re.compile(r"(?P<target>\S+) reached after (?P<span>.+?) in userspace")
# searched, not matched: a getty's prompt may share the console line ("vm login: 2.866s x.service")
_BLAME = re.compile(r"(?P<span>(?:[\d.]+(?:h|min|ms|us|µs|s) ?)+)\s+(?P<unit>\S+)\s*$")
BLAME_KEPT = 40  # units in blame's order (the report prints no more)


class Blamed(TypedDict):
    unit: str
    ms: float  # how long it took to start (systemd-analyze blame)


class View(TypedDict):
    """systemd's view of one boot, in ms where it is a time."""

    state: str  # `systemctl is-system-running` at the end: running, degraded, ...
    startup_ms: dict[str, float]  # systemd-analyze time's parts: firmware, loader, kernel, initrd, userspace
    total_ms: float | None  # its sum
    target: str  # the default target, "reached after" ...
    target_ms: float | None  # ... this long in userspace
    blame: list[Blamed]  # longest first
    critical_chain: list[str]  # as printed
    failed: list[str]  # units that failed


def span_ms(text: str) -> float | None:
    """systemd's time span ("1min 2.345s", "345ms", "12us") in ms; None for no span."""
    parts = _SPAN.findall(text)
    return sum(float(value) * _UNIT_MS[unit] for value, unit in parts) if parts else None


def sections(console: str) -> dict[str, list[str]] | None:
    """The report's lines by section (and "state": [the system's state]), or None when the
    console holds no whole report (the boot never finished)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    ended = False
    for raw in console.splitlines():
        line = _ANSI.sub("", raw).rstrip("\r")
        where = line.find(MARK)
        if where < 0:
            if current is not None and line.strip():
                current.append(line)
            continue
        word, _, rest = line[where + len(MARK):].strip().partition(" ")
        if word == "begin":
            found = {"state": [rest.strip()]}
            current, ended = None, False
        elif word == "end":
            current, ended = None, True
        elif word in SECTIONS:
            current = found.setdefault(word, [])
    return found if ended and "state" in found else None


def read(console: str) -> View | None:
    """systemd's view from a boot's console, or None when the report is not there."""
    parts = sections(console)
    if parts is None:
        return None
    time_text = " ".join(parts.get("time", []))
    startup = {m["what"]: ms for m in _PART.finditer(time_text) if (ms := span_ms(m["span"])) is not None}
    total = re.search(r"= (?P<span>(?:[\d.]+(?:h|min|ms|us|µs|s)\b ?)+)", time_text)
    reached = _REACHED.search(time_text)
    blame = [Blamed(unit=m["unit"], ms=ms) for line in parts.get("blame", []) if (m := _BLAME.search(line))
             and (ms := span_ms(m["span"])) is not None]
    return View(state=parts["state"][0] or "unknown", startup_ms=startup,
                total_ms=span_ms(total["span"]) if total else None,
                target=reached["target"] if reached else "", target_ms=span_ms(reached["span"]) if reached else None,
                blame=blame[:BLAME_KEPT], critical_chain=[line.rstrip() for line in parts.get("critical-chain", [])],
                failed=[line.split()[0] for line in parts.get("failed", []) if line.split()])


class Agreement(TypedDict):
    """One of systemd's figures beside the host's for the same stretch of one boot, and
    the parts of their difference that the guest's own probe times account for."""

    what: str
    systemd_ms: float
    host_ms: float
    host_span: str  # the host's phases that make it
    because: dict[str, float]  # host - systemd, explained: part -> ms (from the guest's probe times)


BEFORE_CLOCK = "before the guest's clock starts"
SYSTEMD_START = "systemd's own start after our exec"
REPORT_LAG = "our report's probe after the boot's end"
GENERATORS = "systemd's generators after its own start"


def against_host(view: View, phases: dict[str, float | None], guest_ms: dict[str, float]) -> list[Agreement]:
    """systemd's kernel and userspace times beside the host's of the same boot, with what
    makes them differ, from GUEST_MS (each probe's time on the guest's clock, its
    console line): the kernel's time before its clock starts (decompression, early setup:
    the host sees it, the guest cannot), systemd's own start after our init execs it (it
    takes its userspace timestamp once loaded), and our report's probe after the end of
    the boot. What is left is the two clocks' disagreement."""
    out: list[Agreement] = []
    startup = view["startup_ms"]
    kernel, initrd, userspace = phases.get("kernel"), phases.get("initrd"), phases.get("userspace")
    to_systemd = phases.get("to_systemd")
    if to_systemd is not None and kernel is not None and initrd is not None and userspace is not None:
        return _against_probed_start(startup, kernel + initrd + to_systemd, userspace - to_systemd, guest_ms, kernel)
    exec_at = guest_ms.get("image_init")
    started = startup["kernel"] - exec_at if "kernel" in startup and exec_at is not None else None
    if "kernel" in startup and kernel is not None and initrd is not None:
        because = {}
        if "init_start" in guest_ms:
            because[BEFORE_CLOCK] = kernel - guest_ms["init_start"]
        if started is not None:
            because[SYSTEMD_START] = -started
        out.append(Agreement(what="kernel", systemd_ms=startup["kernel"], host_ms=kernel + initrd,
                             host_span="kernel + initrd (kernel entry -> image_init)", because=because))
    if "userspace" in startup and userspace is not None:
        because = {}
        if started is not None:
            because[SYSTEMD_START] = started
        if "kernel" in startup and "systemd_finished" in guest_ms:
            because[REPORT_LAG] = guest_ms["systemd_finished"] - startup["kernel"] - startup["userspace"]
        out.append(Agreement(what="userspace", systemd_ms=startup["userspace"], host_ms=userspace,
                             host_span="userspace (image_init -> systemd_finished)", because=because))
    return out


def _against_probed_start(startup: dict[str, float], to_start: float, after_start: float, guest_ms: dict[str, float],
                          kernel: float) -> list[Agreement]:
    """against_host where our generator probed systemd's start: the host's stretches end
    and begin there, as systemd's kernel (with any initrd before it) and userspace do. The
    generator runs a little after systemd took its own timestamp (it loads and sets up
    first): that lag, from the generator's guest time, is named; so is the report's."""
    out: list[Agreement] = []
    started = startup.get("kernel", 0.0) + startup.get("initrd", 0.0)  # systemd's timestamp, guest ms
    lag = guest_ms["systemd_start"] - started if "kernel" in startup and "systemd_start" in guest_ms else None
    if "kernel" in startup:
        because = {BEFORE_CLOCK: kernel - guest_ms["init_start"]} if "init_start" in guest_ms else {}
        if lag is not None:
            because[GENERATORS] = lag
        out.append(Agreement(what="kernel", systemd_ms=started, host_ms=to_start,
                             host_span="kernel entry -> systemd_start", because=because))
    if "userspace" in startup:
        because = {GENERATORS: -lag} if lag is not None else {}
        if "systemd_finished" in guest_ms and "kernel" in startup:
            because[REPORT_LAG] = guest_ms["systemd_finished"] - started - startup["userspace"]
        out.append(Agreement(what="userspace", systemd_ms=startup["userspace"], host_ms=after_start,
                             host_span="systemd_start -> systemd_finished", because=because))
    return out


Boot = tuple[View, dict[str, float | None], dict[str, float]]  # systemd's view, the host's phases, guest probe ms


def summary(boots: list[Boot]) -> dict[str, Any]:
    """Medians over BOOTS (systemd's view, the host's phases, the guest's probe times): each
    part of systemd-analyze time, each agreement with the host, the slowest units (by
    their median over the boots that started them), the units that failed in any boot."""
    parts: dict[str, list[float]] = {}
    for view, _, _ in boots:
        for part, ms in view["startup_ms"].items():
            parts.setdefault(part, []).append(ms)
    rows: dict[str, list[Agreement]] = {}
    for view, phases, guest in boots:
        for row in against_host(view, phases, guest):
            rows.setdefault(row["what"], []).append(row)
    units: dict[str, list[float]] = {}
    for view, _, _ in boots:
        for blamed in view["blame"]:
            units.setdefault(blamed["unit"], []).append(blamed["ms"])
    slowest = sorted(((median(v), u) for u, v in units.items()), reverse=True)[:SLOWEST]
    return {"n": len(boots), "startup_ms": {part: median(v) for part, v in parts.items()},
            "against_host": [{"what": what, "systemd_ms": median([r["systemd_ms"] for r in found]),
                              "host_ms": median([r["host_ms"] for r in found]), "host_span": found[0]["host_span"],
                              "because": {part: median([r["because"][part] for r in found if part in r["because"]])
                                          for part in dict.fromkeys(p for r in found for p in r["because"])}}
                             for what, found in rows.items()],
            "slowest": [{"unit": u, "ms": ms} for ms, u in slowest],
            "failed": sorted({u for view, _, _ in boots for u in view["failed"]})}


SLOWEST = 8  # units a summary names

_STATUS_RUNNING = re.compile(r"A (?:start|stop) job is running for (?P<what>.+?) \(\d")
_STATUS_START = re.compile(r"^\s*Starting (?P<unit>\S+)", re.M)  # not "[UNSUPP] Starting of ..."
_STATUS_DONE = re.compile(r"\] (?:Started|Finished|Failed to start|Dependency failed for|Stopped|Reached target) "
                          r"(?P<unit>\S+)")


def _same_unit(a: str, b: str) -> bool:
    """Whether two status lines name one unit: systemd cuts long names to fit the
    console ('appliance-probe-s…m'), each line at its own place."""
    head_a, head_b = a.split("…")[0], b.split("…")[0]
    return bool(head_a and head_b) and (head_a.startswith(head_b) or head_b.startswith(head_a))


def waiting_for(console: str) -> str | None:
    """What systemd's boot waits for, from its status lines on the console (shown unless
    `quiet` hides them; systemd.show_status=true shows them anyway): the units it said it
    was starting and never said it had started (or failed), else the job it said was still
    running ("A start job is running for ...": not shown while a getty holds the console)."""
    text = _ANSI.sub("", console)
    done = [m["unit"] for m in _STATUS_DONE.finditer(text)]
    pending = [m["unit"] for m in _STATUS_START.finditer(text)
               if not any(_same_unit(m["unit"], unit) for unit in done)]
    if pending:
        return f"units it started that never finished: {', '.join(dict.fromkeys(pending))}"
    running = [m["what"] for m in _STATUS_RUNNING.finditer(text)]
    return f"a start job still running: {running[-1].strip()}" if running else None

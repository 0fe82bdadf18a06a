"""The boots `appliance analyze` reads: N boots with the kernel's initcall debugging on
(initcall_debug, or its trace events), interleaved with N plain boots of the same
bundle, which give the honest phase times. What the boots mean is analysis/analyze.py's
business; this module only boots them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance import results
from appliance.boot import hostfacts
from appliance.boot.accel import AccelChoice
from appliance.bundle import Bundle
from appliance.results import RunRecord, RunSet
from appliance.runs.bench import Plan, Progress, Session, interleave, tty_progress


@dataclass
class DebugBoots:
    debug: Session  # with the debug words, consoles kept
    plain: Session | None  # without them (None: no baseline)
    host: dict[str, Any]

    def counted_debug(self) -> list[tuple[RunRecord, str]]:
        """The debug boots that count, each with its console."""
        return [(r, c) for r, c in zip(self.debug.runs, self.debug.consoles, strict=True) if results.is_counted(r)]

    def counted_plain(self) -> list[RunRecord] | None:
        return results.counted(self.plain.runs) if self.plain else None

    def run_set(self) -> RunSet:
        """The results document of the plain boots (the debug ones without a baseline)."""
        return (self.plain or self.debug).document(True, self.host)


def boot(bundle: Bundle, accel: AccelChoice, n: int, *, debug_cmdline: str, baseline: bool = True,
         timeout: float = 180.0, append: str = "", progress: Progress = tty_progress) -> DebugBoots:
    """N boots with DEBUG_CMDLINE (and N plain ones, interleaved, unless not BASELINE),
    each after one warm-up; APPEND goes on both sides' command lines."""
    host = hostfacts.collect(bundle.arch)
    debug = Session(bundle, accel, Plan(n=n, warmup=1, timeout=timeout, keep_consoles=True,
                                        extra_cmdline=" ".join(filter(None, (append, debug_cmdline)))))
    plain = Session(bundle, accel, Plan(n=n, warmup=1, timeout=timeout, extra_cmdline=append)) if baseline else None
    interleave([s for s in (debug, plain) if s is not None], 1, n, progress=progress)
    return DebugBoots(debug, plain, host)

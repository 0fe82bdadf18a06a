"""Boot a bundle many times and collect the results document."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import hostfacts, measure, results
from .accel import AccelChoice
from .bundle import Bundle
from .errors import BootError

Progress = Callable[[int, int, float], None]


def tty_progress(done: int, total: int, elapsed: float) -> None:
    """A one-line progress indicator on stderr, only when it is a terminal."""
    if not sys.stderr.isatty():
        return
    eta = elapsed / done * (total - done) if done else 0.0
    end = "\n" if done == total else ""
    sys.stderr.write(f"\rboots {done}/{total}  elapsed {elapsed:.0f}s  eta {eta:.0f}s {end}")
    sys.stderr.flush()


def bundle_facts(bundle: Bundle) -> dict[str, Any]:
    build = bundle.manifest.get("build", {})
    return {"path": str(bundle.path), "name": bundle.manifest.get("name"), "digest": bundle.digest,
            "machine": bundle.machine.value, "cmdline": bundle.cmdline,
            "kernel_release": build.get("kernel", {}).get("release")}


def bench(bundle: Bundle, *, qemu_path: str, accel: AccelChoice, n: int, warmup: int, timeout: float,
          keep_going: bool, out: Path, progress: Progress = tty_progress) -> dict[str, Any]:
    """Run WARMUP + N boots; write the results to OUT (partial ones too) and return them."""
    host = hostfacts.collect(qemu_path)
    runs: list[dict[str, Any]] = []
    complete = False
    started = time.monotonic()
    settings = {"n": n, "warmup": warmup, "timeout_s": timeout, "channel": "trace"}
    try:
        for index in range(warmup + n):
            is_warmup = index < warmup
            try:
                run = measure.boot(bundle, qemu_path, accel.accel, timeout)
                runs.append(results.run_record(index, is_warmup, run))
            except BootError as exc:
                runs.append(results.run_record(index, is_warmup, None, str(exc), exc.console_tail))
                if not keep_going:
                    raise
            progress(index + 1, warmup + n, time.monotonic() - started)
        complete = True
    finally:
        doc = results.document(host=host, accel={"used": accel.accel, "reason": accel.reason},
                               bundle=bundle_facts(bundle), settings=settings, runs=runs, complete=complete)
        results.write(out, doc)
    return doc

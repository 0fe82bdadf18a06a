"""The boots `appliance inspect --cost` reads, interleaved, one warm-up each:

- debug: initcall_debug with initramfs_async=0, so the unpack runs inside its initcall
  (its CPU time) and each module's init function is timed;
- plain: the bundle as it boots (module loads, the mount, the init's own work);
- bare: the same bundle with a boot-only initrd (the init, its modules, no payload and
  no other file): its to_init against plain's is what unpacking the rest costs the boot,
  as the kernel really does it (asynchronously, beside other initcalls);
- bound: the init alone with nothing to do, on the same kernel and machine: the
  init-only lower bound, against which bare prices the modules' unpack and plain's
  payload_start the whole appliance;
- for a minimal kernel, optionally, the same init alone on the kernel built without each
  of its optional fragments: against bound, what each fragment costs the kernel phase.

What the boots mean is analysis/cost.py's business; this module only boots them."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from appliance import results
from appliance.assemble import reinitrd
from appliance.boot.accel import AccelChoice
from appliance.bundle import Bundle
from appliance.results import RunRecord
from appliance.runs.bench import Plan, Progress, Session, interleave, tty_progress


@dataclass
class CostBoots:
    debug: Session
    plain: Session
    bare: Session
    bound: Session
    fragments: dict[str, Session] = field(default_factory=dict)  # fragment -> the init alone without it

    @property
    def sessions(self) -> list[Session]:
        return [self.debug, self.plain, self.bare, self.bound, *self.fragments.values()]

    def counted(self) -> tuple[list[tuple[RunRecord, str]], list[RunRecord], list[RunRecord], list[RunRecord]]:
        """The boots that count: the debug ones with their consoles, the plain, the bare, the bound."""
        debug = [(r, c) for r, c in zip(self.debug.runs, self.debug.consoles, strict=True) if results.is_counted(r)]
        plain, bare, bound = (_counted(s) for s in (self.plain, self.bare, self.bound))
        return debug, plain, bare, bound

    def counted_fragments(self) -> dict[str, list[RunRecord]]:
        return {name: _counted(session) for name, session in self.fragments.items()}


def _counted(session: Session) -> list[RunRecord]:
    return results.counted(session.runs)


def prepare(bundle: Bundle, accel: AccelChoice, n: int, workdir: Path, *, debug_words: str, keep: set[str],
            init: set[str], timeout: float = 180.0, without: dict[str, Path] | None = None) -> CostBoots:
    """The four sessions, not yet booted: the debug one with DEBUG_WORDS, the bare one on
    an initrd of the files in KEEP, the bound on one of the files in INIT (both written
    into WORKDIR). A caller may interleave them with others (benchmarks/cost.py)."""
    blob = bundle.initrd.read_bytes()
    bare_initrd, bound_initrd = workdir / f"initrd-boot-only-{bundle.name}", workdir / f"initrd-init-only-{bundle.name}"
    bare_initrd.write_bytes(reinitrd.boot_only(blob, keep))
    bound_initrd.write_bytes(reinitrd.init_only(blob, init))

    def session(target: Bundle, words: str = "", consoles: bool = False) -> Session:
        return Session(target, accel, Plan(n=n, warmup=1, timeout=timeout, keep_consoles=consoles, extra_cmdline=words))

    alone = bundle.with_initrd(bound_initrd)
    return CostBoots(session(bundle, debug_words, True), session(bundle), session(bundle.with_initrd(bare_initrd)),
                     session(alone), {name: session(alone.with_kernel(image)) for name, image in (without or {}).items()})


def boot(bundle: Bundle, accel: AccelChoice, n: int, *, debug_words: str, keep: set[str], init: set[str],
         timeout: float = 180.0, progress: Progress = tty_progress, without: dict[str, Path] | None = None) -> CostBoots:
    """prepare's sessions, booted N times each, interleaved; WITHOUT: fragment -> the
    bundle's minimal kernel built without it."""
    with tempfile.TemporaryDirectory(prefix="appliance-cost-") as tmp:
        boots = prepare(bundle, accel, n, Path(tmp), debug_words=debug_words, keep=keep, init=init, timeout=timeout,
                        without=without)
        interleave(boots.sessions, 1, n, progress=progress)
    return boots

"""What the verbs share: argument types and option groups, loading a bundle, choosing
the accelerator, the results file's path and the boot plan."""

from __future__ import annotations

import argparse
import atexit
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from appliance import bundle
from appliance.boot import accel
from appliance.boot.qemu import Channel
from appliance.cli import output
from appliance.cli.fleet import tls_options
from appliance.clocks import Clock
from appliance.errors import ApplianceError
from appliance.machines import Accel, Machine
from appliance.runs import bench


def _number(text: str, kind: type[float] | type[int], fits: Callable[[float], bool], wanted: str) -> Any:
    """TEXT read as KIND and checked by FITS (finite, in range), or argparse's one line."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if not math.isfinite(value) or not fits(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be {wanted}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a finite number strictly between 0 and 1 (a confidence, a
    relative threshold: 0.05 is 5%)."""
    return float(_number(text, float, lambda v: 0 < v < 1, "a fraction between 0 and 1 (e.g. 0.05 for 5%)"))


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    return int(_number(text, int, lambda v: v >= 0, "0 or more"))


def positive(text: str) -> float:
    """An argparse type: a finite number above 0 (nan, inf, 0 and negatives refused)."""
    return float(_number(text, float, lambda v: v > 0, "a finite number above 0"))


# What the verbs' positional arguments accept, said once for every verb that takes one.
BUNDLE = "a bundle directory (build/<template>), a release .tar.zst or an .iso"
RESULTS = "a results JSON written by bench, compare, crosscheck or analyze"


BOOT_TIMEOUT_S = 120.0  # a boot taking longer counts as hung
MAX_BOOTS = 1000  # boots per side a run set may plan without --yes


def load_bundle(path: str, args: argparse.Namespace) -> bundle.Bundle:
    """The bundle to boot: a directory, a release .tar.zst (unpacked into a temporary
    directory, removed at exit) or an .iso (booted as a CD)."""
    from appliance.assemble import release

    if path.endswith((".iso", ".tar.zst")):
        workdir = Path(tempfile.mkdtemp(prefix="appliance-unpacked-"))
        atexit.register(shutil.rmtree, workdir, True)
        if path.endswith(".iso"):  # unpacked for its bundle.json and digests; booted as a CD
            return release.load_iso(Path(path), workdir)
        target = bundle.load(release.unpack_any(Path(path), workdir))
    else:
        target = bundle.load(Path(path))
    target = target.with_machine(Machine(args.machine)) if args.machine else target
    return target.with_run(cpu_model=args.cpu) if getattr(args, "cpu", None) else target


def warn_accel(choice: accel.AccelChoice) -> None:
    """One warning when --accel auto fell back to TCG."""
    if choice.reason.startswith("KVM unusable"):
        print(f"warning: using TCG: {choice.reason}", file=sys.stderr)


def plan_of(args: argparse.Namespace) -> bench.Plan:
    """The boot plan the bench options describe."""
    if args.n < 1 or args.warmup < 0:
        raise ApplianceError("-n must be at least 1 and --warmup at least 0")
    most = max(args.n, getattr(args, "max_n", None) or 0) + args.warmup
    if most > MAX_BOOTS and not getattr(args, "yes", False):
        raise ApplianceError(f"-n {args.n} asks for {most} boots per side, each seconds long under TCG (a bench "
                             f"prints its estimate as it goes): give --yes if you mean more than {MAX_BOOTS}")
    return bench.Plan(Channel(args.channel), args.n, args.warmup, args.timeout, args.keep_going,
                      extra_cmdline=args.append or "", restore=snapshot_of(args.restore), fleet=fleet_of(args),
                      clock=clock_of(args))


def clock_of(args: argparse.Namespace) -> Clock:
    """--clock, checked against the channel: instructions are matched to the trace's probe
    writes. `auto` (gate's and bisect's default) is virtual under TCG, wall under KVM."""
    given = getattr(args, "clock", "wall")
    if given == "auto":
        given = Clock.VIRTUAL.value if choose_accel(args).accel is Accel.TCG else Clock.WALL.value
    clock = Clock(given)
    if clock.counts and Channel(getattr(args, "channel", "trace")) is not Channel.TRACE:
        raise ApplianceError(f"--clock {clock} pairs each probe's instruction count with QEMU's trace of the same "
                             "write: use --channel trace (the default)")
    return clock


def fleet_of(args: argparse.Namespace) -> Any:
    """The cluster --cluster (or APPLIANCE_CLUSTER) names, connected and closed at exit;
    None to boot here."""
    given = getattr(args, "cluster", None) or os.environ.get("APPLIANCE_CLUSTER", "")
    if not given or not hasattr(args, "cluster"):
        return None
    from appliance.fleet import address, cluster, tls

    fleet = cluster.Fleet(address.parse(given), args.accel, tls=tls.from_options(args.tls_ca, args.tls_cert, args.tls_key),
                          insecure=args.insecure).open()
    atexit.register(fleet.close)
    return fleet


def snapshot_of(path: str | None) -> Any:
    """The snapshot --restore names, loaded and checked (its state against its manifest)."""
    if not path:
        return None
    from appliance import snapshot

    return snapshot.load(Path(path))


def choose_accel(args: argparse.Namespace) -> accel.AccelChoice:
    """--accel resolved (KVM only if it really runs a guest), with the fallback said
    once: the choice is kept on ARGS (--clock auto asks for it before the boots do)."""
    choice: accel.AccelChoice | None = getattr(args, "accel_choice", None)
    if choice is None:
        choice = args.accel_choice = accel.choose(args.accel)
        warn_accel(choice)
    return choice


def output_path(name: str) -> Path:
    """A results file's path, checked before any boot: a run's results are never lost
    to an output that cannot be written. A failure or interrupt later names it."""
    path = Path(name)
    output.writes_results(path)
    if path.is_dir():
        raise ApplianceError(f"output {path} is a directory: give a file name, e.g. {path / 'results.json'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ApplianceError(f"output {path}: directory {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK):
        raise ApplianceError(f"output {path}: directory {parent} is not writable: choose another place")
    if path.exists() and not path.is_file():
        raise ApplianceError(f"output {path} exists and is not a regular file: choose another name")
    try:  # what os.access cannot tell: /proc says writable, a full or read-only disk is not
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".probe") as probe:
            probe.write(b"x")
            probe.flush()
    except OSError as exc:
        raise ApplianceError(f"output {path}: cannot write a file in {parent} ({exc.strerror or exc}): "
                             "choose another place") from None
    return path


def boot_options(p: argparse.ArgumentParser, timeout: float | None = BOOT_TIMEOUT_S) -> None:
    """The options of every verb that boots."""
    p.set_defaults(boots=True)  # an interrupt stops QEMU: say so
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="auto: KVM if it really runs a guest, else TCG with a warning")
    p.add_argument("--timeout", type=positive, default=timeout,
                   help=f"seconds per boot before it counts as hung (default {BOOT_TIMEOUT_S:.0f})")
    p.add_argument("--append", metavar="WORDS", help="kernel command-line words added to every boot "
                   "(the bundle is not changed; e.g. --append initcall_debug)")
    p.add_argument("--channel", choices=[c.value for c in Channel], default="trace",
                   help="how probe times reach the host (default trace)")
    p.add_argument("--clock", choices=[*(c.value for c in Clock), "auto"], default="wall",
                   help="wall: host timestamps only; instructions: also count guest instructions at each probe (a "
                   "TCG plugin; phases in instructions beside the wall ones); virtual: the same under -icount, so the "
                   "guest's own clocks advance with its instructions; auto: virtual under TCG, wall under KVM "
                   "(default %(default)s; docs/MEASUREMENT.md)")
    p.add_argument("--machine", choices=[m.value for m in Machine],
                   help="boot as this machine instead of the bundle's")
    p.add_argument("--cpu", metavar="MODEL", help="QEMU's -cpu model (default: max under TCG, host under KVM)")
    p.add_argument("--restore", metavar="SNAPSHOT", help="start from a snapshot's state (`appliance snapshot`) instead "
                   "of booting: the phases restore and after_restore, and service_ready for services")


def bench_options(p: argparse.ArgumentParser) -> None:
    """The options of every verb that boots a counted series."""
    boot_options(p)
    p.add_argument("-n", type=int, default=10, help="counted boots (default %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="boots run first and not counted (default %(default)s)")
    p.add_argument("--keep-going", action="store_true", help="go on after a failed boot")
    p.add_argument("--yes", action="store_true", help=f"allow more than {MAX_BOOTS} boots per side")
    p.add_argument("--cluster", metavar="ADDRESS", help="boot on a Dask cluster: tls://HOST:PORT (an `appliance "
                   "scheduler` with `appliance worker`s; tcp:// on loopback) or local:N (N workers here); default "
                   "APPLIANCE_CLUSTER, else this process. Each worker boots whole blocks of rounds, so every "
                   "comparison stays within one host")
    tls_options(p)
    record_options(p)


def record_options(p: argparse.ArgumentParser, recording: bool = True) -> None:
    """--db for every verb that uses the results store; --label and --no-record for the
    ones that record (RECORDING)."""
    p.add_argument("--db", metavar="URL", help="the results store: sqlite:///PATH or postgresql://USER@HOST/DB "
                   "(default: APPLIANCE_DB, else $XDG_DATA_HOME/appliance/results.db)")
    if recording:
        p.add_argument("--label", default="", help="a label for what is recorded (e.g. a git revision of your tree)")
        p.add_argument("--no-record", action="store_true", help="do not record the run sets in the results store")


Store = tuple[Any, str]  # the engine and the URL of an open results store


def store_for(args: argparse.Namespace) -> Store | None:
    """The results store the verb records into, opened (and its schema checked) before
    any boot, so an unreachable store is one line up front, not after an hour of boots;
    None with --no-record."""
    if getattr(args, "no_record", True):
        return None
    from appliance.store import db

    return db.open_store(args.db)


def record_results(args: argparse.Namespace, store: Store | None, doc: Mapping[str, Any], source: str) -> None:
    """Record DOC (complete: an interrupted run set is not recorded) and say where."""
    if store is None:
        return
    from appliance.store import db, record

    engine, url = store
    done = record.record(engine, url, doc, args.label, source)
    sets = ", ".join(map(str, done.run_set_ids))
    print(f"recorded: run set(s) {sets} in {db.shown(url)}" if done.new else
          f"already recorded as run set(s) {sets} in {db.shown(url)}", file=sys.stderr)

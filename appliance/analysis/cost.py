"""What each part of an appliance costs at boot (`appliance inspect BUNDLE --cost`).

Pure: it reads a bundle's contents (every file with its source and size, build.contents)
and the boots runs/costboots.py made, interleaved: the bundle as it boots (plain), the
same with a boot-only initrd (bare: the init and its modules), and debug boots with
`initcall_debug initramfs_async=0` (each module's init function; the unpack's own CPU
time).

Per source (a package, the host's programs, the template's files, the init, each kernel
module):
- bytes in the initramfs and on the root disk (exact, from the build);
- unpack: plain's init_start minus bare's, on the guest's clock, paired within rounds
  (what the kernel's unpack of everything beyond the init's own files costs the boot, as
  it really runs: asynchronously, beside other initcalls), and bare's minus the init
  alone's for the modules, each shared out by uncompressed bytes (the unpack is decompression and copying,
  both in proportion to the bytes written; the per-file work is not separated), so the
  total is a measurement and the split a model;
- module load: the init times each finit_module (plain boots, exact per module), the
  module's init function included (initcall_debug shows that part on its own);
and for the appliance as a whole: mounting the root disk and the init's own work before
the payload (plain boots). The rows add up to what the appliance adds over the init-only
lower bound: benchmarks/cost.py checks that against boots of the `minimal` template.

A file on an EROFS (or ext4) root is read when used, not unpacked at boot: its row says
what moving it there would save, its unpack.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance import results
from appliance.analysis import analyze, initcalls
from appliance.bundle import Bundle
from appliance.results import RunRecord

UNPACK = "populate_rootfs"  # the initcall that unpacks the initramfs (init/initramfs.c)
# Added to the debug boots: the unpack runs inside its initcall instead of beside the others
COST_CMDLINE = "initramfs_async=0"
BOOT_SOURCES = ("init", "network")  # what the init itself needs: not movable to a root disk


@dataclass
class SourceCost:
    source: str
    initrd_bytes: int = 0
    root_bytes: int = 0
    files: int = 0
    unpack_ms: float = 0.0
    load_ms: float = 0.0  # finit_module as the init timed it (its init function included)
    initcall_ms: float = 0.0  # of load_ms, the module's init function (initcall_debug)

    @property
    def total_ms(self) -> float:
        return self.unpack_ms + self.load_ms

    @property
    def movable(self) -> bool:
        """Whether it could live on a root disk instead (modules and the init cannot: they
        are what reaches the disk)."""
        return not self.source.startswith("kernel module ") and self.source not in BOOT_SOURCES


@dataclass
class Cost:
    sources: list[SourceCost]
    unpack_ms: float  # what unpacking the movable files costs the boot: plain - bare init_start (guest clock)
    needed_unpack_ms: float  # the same for the modules the init needs: bare - bound init_start
    mount_ms: float | None  # mounting the root disk (None: no root disk)
    init_ms: float  # the init's own work before the payload, loads and mount taken out
    boots: int
    measured_ms: float | None  # plain's payload_start - bound's init_start: what the table should add up to
    notes: list[str] = field(default_factory=list)
    fragments: dict[str, float | None] = field(default_factory=dict)  # minimal kernel: fragment -> kernel-phase ms

    @property
    def total_ms(self) -> float:
        return sum(s.total_ms for s in self.sources) + (self.mount_ms or 0.0) + self.init_ms

    def erofs_saving_ms(self) -> float:
        """The unpack of every movable source still in the initramfs."""
        return sum(s.unpack_ms for s in self.sources if s.movable and s.initrd_bytes)

    def to_dict(self) -> dict[str, Any]:
        rows = [{"source": s.source, "initrd_bytes": s.initrd_bytes, "root_bytes": s.root_bytes, "files": s.files,
                 "unpack_ms": round(s.unpack_ms, 2), "load_ms": round(s.load_ms, 2),
                 "initcall_ms": round(s.initcall_ms, 2), "total_ms": round(s.total_ms, 2), "movable": s.movable}
                for s in self.sources]
        return {"sources": rows, "unpack_ms": round(self.unpack_ms, 2),
                "needed_unpack_ms": round(self.needed_unpack_ms, 2),
                "measured_ms": None if self.measured_ms is None else round(self.measured_ms, 2),
                "mount_ms": None if self.mount_ms is None else round(self.mount_ms, 2),
                "init_ms": round(self.init_ms, 2), "total_ms": round(self.total_ms, 2),
                "erofs_saving_ms": round(self.erofs_saving_ms(), 2), "boots": self.boots, "notes": self.notes,
                "fragments": {k: None if v is None else round(v, 2) for k, v in self.fragments.items()},
                "method": "unpack: init_start of the bundle minus init_start of it with a boot-only initrd (the "
                          "init and its modules), and that minus init_start of the init alone, on the guest's clock, "
                          "medians of the differences within a round of interleaved boots, each shared out by "
                          "uncompressed bytes; module loads, mount and init: plain boots (the init's clock); module "
                          "init functions: initcall_debug; measured: the bundle's payload_start minus the init "
                          "alone's init_start, the same way"}


def _median(values: Iterable[float]) -> float | None:
    got = list(values)
    return statistics.median(got) if got else None


def _event(run: RunRecord, name: str) -> float | None:
    return next((e["t_ms"] for e in run["events"] if e["name"] == name), None)


def unpack_us(calls: list[initcalls.Initcall]) -> float | None:
    """The initramfs unpack of one debug boot: its populate_rootfs initcall."""
    found = [c.duration_us for c in calls if c.name == UNPACK and c.module is None]
    return found[0] if found else None


def _by_source(contents: list[dict[str, Any]]) -> dict[str, SourceCost]:
    rows: dict[str, SourceCost] = {}
    for item in contents:
        row = rows.setdefault(item["source"], SourceCost(item["source"]))
        row.files += item["kind"] == "file"
        if item["in"] == "initrd":
            row.initrd_bytes += item["bytes"]
        else:
            row.root_bytes += item["bytes"]
    return rows


def _module_loads(plain: list[RunRecord]) -> dict[str, float]:
    """Median load time per module (ms) over the plain boots."""
    times: dict[str, list[float]] = defaultdict(list)
    for run in plain:
        for module in run.get("guest_modules", []):
            times[module["name"]].append(module["duration_ns"] / 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def _module_initcalls(debug: list[list[initcalls.Initcall]]) -> dict[str, float]:
    """Median time of each module's init function (ms) over the debug boots."""
    times: dict[str, list[float]] = defaultdict(list)
    for calls in debug:
        for call in calls:
            if call.module:
                times[call.module].append(call.duration_us / 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def _init_spans(plain: list[RunRecord], loads: dict[str, float]) -> tuple[float | None, float]:
    """(mounting the root disk, the init's own work before the payload), medians in ms."""
    mounts, own = [], []
    for run in plain:
        start, payload, mounted = _event(run, "init_start"), _event(run, "payload_start"), _event(run, "init_root_mounted")
        if start is None or payload is None:
            continue
        loaded = _event(run, "init_modules_loaded")
        mount = mounted - (loaded if loaded is not None else start) if mounted is not None else None
        if mount is not None:
            mounts.append(mount)
        module_ms = sum(m["duration_ns"] for m in run.get("guest_modules", [])) / 1e6
        own.append(payload - start - module_ms - (mount or 0.0))
    return _median(mounts), _median(own) or 0.0


def _guest_ms(run: RunRecord, name: str) -> float | None:
    """When probe NAME fired on the guest's own clock (CLOCK_BOOTTIME, from the kernel's
    timekeeping start): free of QEMU's start and the kernel's decompression, which are
    most of a boot's spread under TCG and the same for every session here."""
    return next((p["boottime_ns"] / 1e6 for p in run.get("guest_probes", []) if p["name"] == name), None)


def paired(later: list[RunRecord], later_probe: str, earlier: list[RunRecord],
           earlier_probe: str = "init_start") -> float | None:
    """The median over rounds of LATER's LATER_PROBE minus EARLIER's EARLIER_PROBE, both
    on the guest clock, each pair booted in the same round (the host's mood drifts over
    minutes; a round's boots share it); None when no round has both."""
    def by_round(runs: list[RunRecord], probe: str) -> dict[int, float]:
        return {r.get("round", i): t for i, r in enumerate(runs) if (t := _guest_ms(r, probe)) is not None}

    a, b = by_round(later, later_probe), by_round(earlier, earlier_probe)
    return _median(a[k] - b[k] for k in a if k in b)


def cost(contents: list[dict[str, Any]], debug: list[list[initcalls.Initcall]], plain: list[RunRecord],
         bare: list[RunRecord], bound: list[RunRecord]) -> Cost:
    """The cost table from the bundle's CONTENTS, the debug boots' initcalls, and the
    plain, boot-only and init-only boots' records (runs/costboots.py). Raises ValueError
    when a kind of boot reached no init_start."""
    rest, needs = paired(plain, "init_start", bare), paired(bare, "init_start", bound)
    if rest is None or needs is None:
        raise ValueError("the boots reached no init_start")
    rows = _by_source(contents)
    movable = [r for r in rows.values() if r.movable and r.initrd_bytes]
    # what the init needs beyond itself: the modules (and the network's files)
    needed = [r for r in rows.values() if not r.movable and r.source != "init" and r.initrd_bytes]
    unpack_ms = max(rest, 0.0) if movable else 0.0
    needed_ms = max(needs, 0.0) if needed else 0.0
    for group, total in ((movable, unpack_ms), (needed, needed_ms)):
        group_bytes = sum(r.initrd_bytes for r in group) or 1
        for row in group:
            row.unpack_ms = total * row.initrd_bytes / group_bytes
    loads, inits = _module_loads(plain), _module_initcalls(debug)
    for name, ms in loads.items():
        row = rows.setdefault(f"kernel module {name}", SourceCost(f"kernel module {name}"))
        row.load_ms, row.initcall_ms = ms, inits.get(name, 0.0)
    mount_ms, init_ms = _init_spans(plain, loads)
    ranked = sorted(rows.values(), key=lambda r: (-r.total_ms, -r.initrd_bytes - r.root_bytes, r.source))
    measured = paired(plain, "payload_start", bound)
    cpu = [u for u in (unpack_us(calls) for calls in debug) if u is not None]
    notes = []
    if cpu:
        notes.append(f"the whole unpack run on its own (initramfs_async=0, {UNPACK}) takes "
                     f"{statistics.median(cpu) / 1000:.1f} ms of the kernel's time; run as the kernel runs it, beside "
                     f"other initcalls, it delays init by {unpack_ms + needed_ms:.1f} ms")
    for group, gap, what in ((movable, rest, "the bundle"), (needed, needs, "the init alone")):
        if group and gap < 0:
            notes.append(f"the boot-only initrd reached init {-gap:.1f} ms later than {what}: noise larger "
                         "than the unpack; boot more (-n)")
    return Cost(ranked, unpack_ms, needed_ms, mount_ms, init_ms, len(plain), measured, notes)


def fragment_costs(alone: list[RunRecord], without: dict[str, list[RunRecord]]) -> dict[str, float | None]:
    """What each optional fragment of a minimal kernel costs the kernel phase: the init
    alone on the kernel, less the same on the kernel built without the fragment, the
    median over rounds of the difference within a round (None: no round had both)."""
    def kernel_by_round(runs: list[RunRecord]) -> dict[int, float]:
        return {r.get("round", i): kernel for i, r in enumerate(runs)
                if (kernel := results.phases_of(r).get("kernel")) is not None}

    base = kernel_by_round(alone)
    out: dict[str, float | None] = {}
    for name, runs in without.items():
        other = kernel_by_round(runs)
        out[name] = _median(base[k] - other[k] for k in base if k in other)
    return out


def boot_paths(contents: list[dict[str, Any]]) -> set[str]:
    """The initrd files a boot-only initrd keeps: the init's own and the modules."""
    return {item["path"].lstrip("/") for item in contents
            if item["in"] == "initrd" and not SourceCost(item["source"]).movable}


def init_paths(contents: list[dict[str, Any]]) -> set[str]:
    """The initrd files of the init alone (the lower bound on the bundle's kernel)."""
    return {item["path"].lstrip("/") for item in contents if item["in"] == "initrd" and item["source"] == "init"}


def debug_words() -> str:
    """What the debug boots add to the command line."""
    return f"{analyze.DEBUG_CMDLINE} {COST_CMDLINE}"


def of_boots(bundle: Bundle, debug: list[tuple[RunRecord, str]], plain: list[RunRecord],
             bare: list[RunRecord], bound: list[RunRecord],
             without: dict[str, list[RunRecord]] | None = None) -> Cost:
    """cost() of BUNDLE's counted boots (runs/costboots.py: CostBoots.counted), with
    the fragments priced from the init alone on kernels WITHOUT each."""
    table = cost(bundle.contents, analyze.initcalls_of(bundle, debug), plain, bare, bound)
    table.fragments = fragment_costs(bound, without) if without else {}
    return table


def text(table: dict[str, Any], top: int = 25) -> str:
    """The cost table as a user reads it."""
    lines = [f"{'source':<48} {'initrd':>10} {'root':>10} {'unpack':>8} {'load':>8} {'of it init':>10} {'total':>8}",
             f"{'':<48} {'bytes':>10} {'bytes':>10} {'ms':>8} {'ms':>8} {'ms':>10} {'ms':>8}"]
    rows = table["sources"]
    for row in rows[:top]:
        lines.append(f"{row['source'][:48]:<48} {row['initrd_bytes']:>10} {row['root_bytes']:>10} "
                     f"{row['unpack_ms']:>8.1f} {row['load_ms']:>8.1f} {row['initcall_ms']:>10.1f} {row['total_ms']:>8.1f}")
    if len(rows) > top:
        rest = rows[top:]
        lines.append(f"{f'... {len(rest)} more sources':<48} {sum(r['initrd_bytes'] for r in rest):>10} "
                     f"{sum(r['root_bytes'] for r in rest):>10} {sum(r['unpack_ms'] for r in rest):>8.1f} "
                     f"{sum(r['load_ms'] for r in rest):>8.1f} {'':>10} {sum(r['total_ms'] for r in rest):>8.1f}")
    if table["mount_ms"] is not None:
        lines.append(f"{'root disk: mounting it':<48} {'':>10} {'':>10} {'':>8} {'':>8} {'':>10} {table['mount_ms']:>8.1f}")
    lines.append(f"{'the init: its own work before the payload':<48} {'':>10} {'':>10} {'':>8} {'':>8} {'':>10} "
                 f"{table['init_ms']:>8.1f}")
    unpacked = table["unpack_ms"] + table["needed_unpack_ms"]
    lines.append(f"{'total':<48} {sum(r['initrd_bytes'] for r in rows):>10} {sum(r['root_bytes'] for r in rows):>10} "
                 f"{unpacked:>8.1f} {sum(r['load_ms'] for r in rows):>8.1f} {'':>10} {table['total_ms']:>8.1f}")
    if table["measured_ms"]:
        lines.append(f"{'measured: payload_start over the init alone':<48} {'':>10} {'':>10} {'':>8} {'':>8} {'':>10} "
                     f"{table['measured_ms']:>8.1f}  (the table accounts for "
                     f"{table['total_ms'] / table['measured_ms']:.0%})")
    lines += ["", f"unpack: the bundle's init_start minus its init_start with a boot-only initrd (the init and its "
                  f"modules), {table['unpack_ms']:.1f} ms, and that minus the init alone's, {table['needed_unpack_ms']:.1f}"
                  f" ms (guest clock; medians over {table['boots']} rounds of interleaved boots), each shared out by "
                  "uncompressed bytes;",
              "load, mount, init: the plain boots, on the init's own clock; `of it init`: the module's init function "
              "(initcall_debug). `total` is what this appliance adds to the init alone on this kernel."]
    movable = [r for r in rows if r["movable"] and r["initrd_bytes"]]
    if movable:
        big = max(movable, key=lambda r: r["initrd_bytes"])
        lines.append(f"on an EROFS root ([rootfs] format = \"erofs\") {len(movable)} sources would leave the initramfs, "
                     f"saving their {table['erofs_saving_ms']:.1f} ms of unpack (the largest, {big['source']}: "
                     f"{big['unpack_ms']:.1f} ms); reaching the root costs loading its driver and erofs, and the mount.")
    for name, ms in table.get("fragments", {}).items():
        lines.append(f"kernel fragment {name}: {'-' if ms is None else f'{ms:.1f} ms'} of the kernel phase (the init "
                     "alone on the kernel with it, less on the kernel built without it)")
    lines += [f"note: {n}" for n in table["notes"]]
    return "\n".join(lines)

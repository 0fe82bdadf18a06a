"""Tune: which knobs make this bundle boot faster on this host, and by how much.

A knob is a change that needs no rebuild: kernel command-line words, or a VM setting
(vCPUs, memory, machine); with `--rebuild`, also a rebuilt part: the initrd
recompressed or without one module (rebuilt_initrd), the minimal kernel's image in
another compression (built by the CLI). Every applicable knob becomes a variant of the bundle;
the base and all variants are booted interleaved (a round is one boot of each), so the
host's drift hits them alike, and each variant is compared with the base by the same
procedure as `appliance compare` (to_init as the primary phase). Across knobs, Holm's
correction keeps "real differences" honest: only those are called out. A variant whose
boots fail broke the boot, and is reported as such, never as fast.

The catalog and the ranking are pure; the loop lives in the CLI (it boots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import results
from appliance.assemble import kernelfetch, reinitrd
from appliance.assemble.compress import Compression
from appliance.bundle import Bundle
from appliance.clocks import Unit
from appliance.fsutil import atomic_write
from appliance.machines import Arch, Machine, shape, transport_problem
from appliance.results import RunRecord
from appliance.runs import compare
from appliance.stats import holm, smallest_p


@dataclass(frozen=True)
class Knob:
    name: str
    why: str  # what it changes, and the field's reason to try it
    words: str = ""  # kernel command-line words added
    settings: dict[str, Any] = field(default_factory=dict)  # Bundle.with_run settings
    machine: Machine | None = None  # boot as this machine
    pvh: bool = False  # boot the bundle's bzImage decompressed ahead of time, through its PVH entry
    kernel_image: str = ""  # boot this kernel instead (a minimal kernel without some symbols, or recompressed)
    initrd: tuple[str, ...] = ()  # rebuild the initrd: "compression=none", "compression=zstd:3", "without=MODULE"


def catalog(bundle: Bundle) -> list[Knob]:
    """The knobs that apply to BUNDLE (a knob already in its command line is left out)."""
    cmdline = bundle.cmdline.split()
    cpus, memory = bundle.cpus, bundle.memory_mib
    knobs = [
        Knob("verbose console", "the console costs per character: what `quiet` saves", words="loglevel=7")
        if "quiet" in cmdline else Knob("quiet", "a quiet console prints less", words="quiet"),
        Knob("cryptomgr.notests", "skip the crypto self-tests at boot", words="cryptomgr.notests"),
        Knob("mitigations=off", "no CPU vulnerability mitigations", words="mitigations=off"),
    ]
    if bundle.arch is not Arch.X86_64:  # virt: one machine, and its device tree lists the vCPUs
        knobs += [Knob(f"{mib} MiB", "memory is initialised page by page", settings={"memory_mib": mib})
                  for mib in (128, 1024) if mib != memory]
        return [k for k in knobs if not (k.words and all(w in cmdline for w in k.words.split()))]
    knobs += [
        Knob("tsc.reliable", "skip the TSC's stability checks and watchdog", words="tsc.reliable"),
        Knob("8250.nr_uarts=1", "probe one legacy UART instead of four", words="8250.nr_uarts=1"),
        Knob("i8042 off", "no PS/2 controller probing", words="i8042.noaux i8042.nokbd i8042.nopnp"),
        Knob("no_timer_check", "skip the timer IRQ check", words="no_timer_check"),
    ]
    if bundle.machine is not Machine.MICROVM:
        knobs.append(Knob("acpi=off", "no ACPI tables parsed (microvm has none anyway)", words="acpi=off"))
    for n in (2, 4):
        if n != cpus:
            knobs.append(Knob(f"{n} vCPUs", "each extra vCPU is brought up and its TSC synced", settings={"cpus": n}))
            knobs.append(Knob(f"{n} vCPUs + tsc.reliable", "extra vCPUs without the TSC sync",
                              words="tsc.reliable", settings={"cpus": n}))
    for mib in (128, 1024):
        if mib != memory:
            knobs.append(Knob(f"{mib} MiB", "memory is initialised page by page", settings={"memory_mib": mib}))
    for machine in Machine:
        reachable = transport_problem(bundle.virtio_transports, bundle.uses_virtio, machine) is None
        same_arch = shape(machine).arch is bundle.arch  # never `machine virt` for an x86_64 bundle
        if machine is not bundle.machine and reachable and same_arch and (
                machine is not Machine.Q35_QBOOT or bundle.firmware is not None):
            knobs.append(Knob(f"machine {machine.value}", "another machine and firmware", machine=machine))
    if kernelfetch.image_kind(bundle.kernel.read_bytes()[:0x1000]) == "bzImage":
        knobs.append(Knob("kernel decompressed (PVH)", "boot the kernel without its decompressor: under TCG most of a "
                          "distro kernel's early seconds", pvh=True))
    return [k for k in knobs if not (k.words and all(w in cmdline for w in k.words.split()))]


def rebuild_catalog(bundle: Bundle) -> list[Knob]:
    """Knobs that rebuild part of BUNDLE (`tune --rebuild`): its initrd's compression, and
    its module set, one module left out at a time (a module the boot needs shows up as
    a knob that broke the boot)."""
    blob = bundle.initrd.read_bytes()
    knobs = []
    if reinitrd.compression_of(blob) is Compression.ZSTD:
        knobs.append(Knob("initrd uncompressed", "no decompression in the guest, more bytes to load",
                          initrd=("compression=none",)))
        knobs.append(Knob("initrd zstd -3", "a fast level: bigger, built in a fraction of the time",
                          initrd=("compression=zstd:3",)))
    else:
        knobs.append(Knob("initrd zstd", "fewer bytes to load, decompressed in the guest", initrd=("compression=zstd:0",)))
    knobs += [Knob(f"without {name}", "does the boot need this module? (the init loads each one, timed)",
                   initrd=(f"without={name}",)) for name in reinitrd.modules(blob)]
    return knobs


def rebuilt_initrd(blob: bytes, changes: tuple[str, ...]) -> bytes:
    """BLOB with a knob's initrd CHANGES applied ("compression=KIND[:LEVEL]", "without=MODULE")."""
    compression, level, without = None, 0, []
    for change in changes:
        key, _, value = change.partition("=")
        if key == "compression":
            kind, _, lvl = value.partition(":")
            compression, level = Compression(kind), int(lvl or 0)
        elif key == "without":
            without.append(value)
        else:
            raise ValueError(f"unknown initrd change {change!r}")
    return reinitrd.rebuild(blob, compression, level, without)


def select(knobs: list[Knob], names: list[str]) -> list[Knob]:
    """KNOBS whose names are in NAMES (in that order), or a ValueError naming the unknown."""
    by_name = {k.name: k for k in knobs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown or inapplicable knob(s) {', '.join(unknown)}; these apply: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def apply(bundle: Bundle, knob: Knob, workdir: Path | None = None) -> tuple[Bundle, str]:
    """The variant bundle (in memory) and the words its boots add; a PVH knob writes the
    decompressed kernel into WORKDIR (a KernelError if the kernel cannot do it)."""
    variant = bundle.with_machine(knob.machine) if knob.machine else bundle
    if knob.kernel_image:
        variant = variant.with_kernel(Path(knob.kernel_image))
    if knob.pvh:
        if workdir is None:
            raise ValueError("a PVH variant needs a folder for its kernel")
        image = workdir / "vmlinux-pvh"
        if not image.is_file():
            atomic_write(image, kernelfetch.pvh_vmlinux(bundle.kernel.read_bytes()))
        variant = variant.with_kernel(image)
    if knob.initrd:
        if workdir is None:
            raise ValueError("an initrd variant needs a folder for its initrd")
        image = workdir / ("initrd-" + "-".join(c.replace("=", "_").replace(":", "_") for c in knob.initrd))
        if not image.is_file():
            atomic_write(image, rebuilt_initrd(bundle.initrd.read_bytes(), knob.initrd))
        variant = variant.with_initrd(image)
    if knob.settings:
        variant = variant.with_run(**knob.settings)
    return variant, knob.words


def combine(knobs: list[Knob]) -> Knob:
    """One knob doing all of KNOBS: words joined, settings merged (the first wins a clash),
    the first machine. The caller picks compatible, helpful knobs."""
    words: list[str] = []
    settings: dict[str, Any] = {}
    machine, pvh, kernel_image = None, False, ""
    initrd: list[str] = []
    for knob in knobs:
        pvh = pvh or knob.pvh
        kernel_image = kernel_image or knob.kernel_image
        compressions = [c for c in initrd if c.startswith("compression=")]
        initrd += [c for c in knob.initrd if c not in initrd and not (c.startswith("compression=") and compressions)]
        words += [w for w in knob.words.split() if w not in words]
        for key, value in knob.settings.items():
            settings.setdefault(key, value)
        machine = machine or knob.machine
    return Knob(" + ".join(k.name for k in knobs), "the knobs that helped, together", " ".join(words), settings,
                machine, pvh, kernel_image, tuple(initrd))


def rank(base_runs: list[RunRecord], variants: dict[str, list[RunRecord]], confidence: float = 0.95,
         looks: int = 1, unit: Unit = Unit.MS) -> list[dict[str, Any]]:
    """Per knob: did it break the boot, its change in to_init and total against the base
    (ratio, interval, p), and whether that change is real after Holm across the knobs;
    sorted by the change in to_init, the best first. In instructions (the instruction
    clock) a change is real where its range excludes 1 (compare.compare_counts)."""
    if unit is Unit.INSTRUCTIONS:
        return _rank_counts(base_runs, variants)
    rows: list[dict[str, Any]] = []
    for name, runs in variants.items():
        failed = results.failed(runs)
        if failed and not results.counted(runs):
            rows.append({"knob": name, "broke": results.failure_reasons(runs), "to_init": None, "total": None})
            continue
        result = compare.compare(base_runs, runs, confidence=confidence, looks=looks)
        by_phase = {r["phase"]: r for r in result["rows"]}
        rows.append({"knob": name, "broke": results.failure_reasons(runs) if failed else None,
                     **{phase: _change(by_phase.get(phase)) for phase in ("to_init", "total")}})
    measured = [r for r in rows if r["to_init"] is not None]
    alpha = (1 - confidence) / looks
    thresholds = holm([r["to_init"]["p_value"] for r in measured], alpha)
    for row, threshold in zip(measured, thresholds, strict=True):
        ci = row["to_init"]["ci"]
        row["real"] = bool(threshold and row["to_init"]["p_value"] <= threshold and ci and (ci[1] < 1 or ci[0] > 1))
        # Holm's first step tests at alpha / knobs: below that many boots no knob can be real
        row["reachable"] = smallest_p(len(results.counted(base_runs)), row["to_init"]["n"]) <= alpha / len(measured)
    return sorted(rows, key=lambda r: (r["to_init"] is None, r["to_init"]["ratio"] if r["to_init"] else 0.0))


def _rank_counts(base_runs: list[RunRecord], variants: dict[str, list[RunRecord]]) -> list[dict[str, Any]]:
    """rank() on the instruction clock: each knob's counts against the base's by their
    range; no Holm (no p), a change is real where the range excludes 1."""
    rows: list[dict[str, Any]] = []
    for name, runs in variants.items():
        failed = results.failed(runs)
        broke = results.failure_reasons(runs) if failed else None
        by_phase = {r["phase"]: r for r in compare.compare_counts(base_runs, runs)["rows"]}
        to_init = _change(by_phase.get("to_init"), Unit.INSTRUCTIONS)
        rows.append({"knob": name, "broke": broke, "unit": Unit.INSTRUCTIONS.value, "to_init": to_init,
                     "total": _change(by_phase.get("total"), Unit.INSTRUCTIONS),
                     "real": bool(to_init and (to_init["ci"][1] < 1 or to_init["ci"][0] > 1)), "reachable": True})
    return sorted(rows, key=lambda r: (r["to_init"] is None, r["to_init"]["ratio"] if r["to_init"] else 0.0))


def _change(row: dict[str, Any] | None, unit: Unit = Unit.MS) -> dict[str, Any] | None:
    if row is None:
        return None
    delta = "delta_ms" if unit is Unit.MS else "delta_instructions"
    return {"median_base": row["median_a"], "median": row["median_b"], "ratio": row["ratio"],
            delta: row["median_b"] - row["median_a"], "ci": row["ci"],
            "p_value": row["p_value"], "n": row["n_b"]}


def helpful(rows: list[dict[str, Any]]) -> list[str]:
    """The knobs whose to_init saving is real (interval below 1), best first."""
    return [r["knob"] for r in rows if r.get("real") and r["to_init"] and r["to_init"]["ci"][1] < 1
            and not r["broke"]]


def table(rows: list[dict[str, Any]]) -> str:
    counted = any(r.get("unit") == Unit.INSTRUCTIONS.value for r in rows)
    unit, interval = ("M insns", "range") if counted else ("ms", "95% CI")
    head = f"{'knob':<28} {'to_init ' + unit:>11} {'change':>8} {interval:>17} {'total change':>13}  verdict"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["to_init"] is None:
            lines.append(f"{r['knob']:<28} {'-':>11} {'-':>8} {'-':>17} {'-':>13}  broke the boot: "
                         f"{next(iter(r['broke']))}")
            continue
        t, total = r["to_init"], r["total"]
        ci = f"{(t['ci'][0] - 1) * 100:+.1f}% to {(t['ci'][1] - 1) * 100:+.1f}%" if t["ci"] else "n/a"
        verdict = (("faster" if t["ratio"] < 1 else "slower") if r.get("real") else
                   "no real difference" if r.get("reachable", True) else "no verdict possible at this -n")
        if r["broke"]:
            verdict += f" (some boots failed: {next(iter(r['broke']))})"
        median = f"{t['median'] / 1e6:.3f}" if counted else f"{t['median']:.1f}"
        lines.append(f"{r['knob']:<28} {median:>11} {(t['ratio'] - 1) * 100:>+7.2f}% {ci:>17} "
                     f"{((total['ratio'] - 1) * 100 if total else 0):>+12.1f}%  {verdict}")
    return "\n".join(lines)

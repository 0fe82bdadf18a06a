"""supermin against appliance, side by side, on the same package sets, kernel and machine.

For each set (the python template's python3-minimal, and the tools template's
busybox-static + e2fsprogs + util-linux) this builds both appliances and boots both:

- build, cold: ours with an empty package cache (the kernel is cached for both: it is
  the same input), supermin `--prepare` + `--build`; warm: ours into a fresh build
  folder with the packages cached, supermin `--build` from the prepared supermin.d;
  nothing changed: ours again (SCons finds it up to date), supermin `--build --if-newer`.
- size: ours is the initrd (and the root disk for tools); supermin's is its initrd and
  its ext2 root; both as allocated on disk (du) and apparent.
- the set's EROFS template too (python-erofs, tools-erofs: the packages on a read-only
  root image), built and booted beside the initramfs one;
- boot: the libguestfs way for supermin (its mini initrd loads its modules, mounts the
  ext2 root from virtio-blk and runs /init there), ours as a bundle; both on microvm
  under the same accelerator with the same extra kernel words, booted interleaved, timed
  from QEMU's start to the console lines of the init's payload_start and the payload's
  work_done probes, interleaved in a random order per round with the init-only lower
  bound (the `minimal` template: QEMU's start to init_start). All run the
  same init (ours, from build/programs) and the same payload, so the difference is the
  appliance, not the work.

supermin builds its root from the host's own files of the packages, so they must be
installed on the host (it leaves out, silently, what is not): the script checks that
first. It also needs /lib/modules on the host to exist; the script creates an empty
one if missing and removes it again.

    .venv/bin/python benchmarks/supermin.py [--boots 7] [--builds 5] [--sets python,tools]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc  # noqa: E402
from appliance.assemble import initramfs, kernelfetch  # noqa: E402
from appliance.assemble.kernelfetch import LOCK  # noqa: E402
from appliance.assemble.template import (  # noqa: E402
    TEMPLATES,  # noqa: E402
    RootDisk,
    load_template,
)
from appliance.boot import tsc  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402

SETS = {"python": ["python3-minimal"], "tools": ["busybox-static", "e2fsprogs", "util-linux"]}
MARK = b"appliance-probe: work_done"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    done = proc.run(argv, cwd=ROOT, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - start


def build_ours(template: str, build_dir: Path, cache: Path) -> float:
    # as on a user's machine: Python keeps its compiled modules (this workplace's shells set
    # PYTHONDONTWRITEBYTECODE, which makes every scons compile the package again, ~60 ms)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["APPLIANCE_CACHE"] = str(cache)
    return timed([SCONS, "-Q", f"BUILD_DIR={build_dir}", "appliance", f"TEMPLATE={template}"], env)


def cold_cache(work: Path) -> Path:
    """A cache with the kernel (shared, the same input to both) and no packages."""
    cache = work / "cache"
    cache.mkdir(parents=True)
    (cache / "kernels").symlink_to(kernelfetch.cache_dir() / "kernels")
    return cache


def supermin_extras(template: str, ours: Path, target: Path) -> None:
    """The same init, init.conf and payload files as our appliance, as a tarball that
    supermin unpacks into its root."""
    t = load_template(TEMPLATES / f"{template}.toml")
    conf = initramfs.init_conf(replace(t, root=RootDisk.NONE, modules=()))
    files = {"init": (ours / "programs" / "init").read_bytes(), "etc/appliance/init.conf": conf.encode()}
    for spec in t.files:
        files[spec.dst] = (Path(t.folder) / spec.src).read_bytes()
    # supermin's root takes the host's merged /usr (/bin -> usr/bin): our programs go where
    # that link points, and every parent directory comes first in the tarball
    bin_dir = "usr/bin" if os.path.islink("/bin") else "bin"
    for program in t.programs:
        files[f"{bin_dir}/{program}"] = (ours / "programs" / program).read_bytes()
    parents = sorted({str(parent) for name in files for parent in Path(name).parents if str(parent) != "."})
    with tarfile.open(target, "w:gz") as tar:
        for folder in parents:
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name == "init" or name.startswith(bin_dir) else 0o644
            tar.addfile(info, io.BytesIO(data))


def supermin_env() -> dict[str, str]:
    release = kernelfetch.read_lock(LOCK).release
    files = kernelfetch.fetch_debian(kernelfetch.read_lock(LOCK))
    return {**os.environ, "SUPERMIN_KERNEL": str(files.image), "SUPERMIN_MODULES": str(files.modules),
            "SUPERMIN_KERNEL_VERSION": release}


def build_supermin(packages: list[str], work: Path, extras: Path, env: dict[str, str], prepare: bool,
                   if_newer: bool = False) -> float:
    start = time.monotonic()
    if prepare:
        shutil.rmtree(work / "supermin.d", ignore_errors=True)
        timed(["supermin", "--prepare", "-o", str(work / "supermin.d"), *packages], env)
        shutil.copy(extras, work / "supermin.d" / "init.tar.gz")
    if not if_newer:
        shutil.rmtree(work / "appliance.d", ignore_errors=True)
    timed(["supermin", "--build", *(["--if-newer"] if if_newer else []), "-f", "ext2", "--host-cpu", "x86_64",
           "-o", str(work / "appliance.d"), str(work / "supermin.d")], env)
    return time.monotonic() - start


def du(path: Path) -> int:
    return path.stat().st_blocks * 512


def qemu_base(accel: str) -> list[str]:
    return ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-M", "microvm",
            "-accel", accel, "-cpu", "max", "-m", "256", "-smp", "1", "-serial", "stdio"]


def ours_argv(folder: Path, accel: str, kernel_image: Path | None = None) -> list[str]:
    b = bundle.load(folder)
    disks = []
    for i, disk in enumerate(b.disks):
        disks += ["-drive", f"id=d{i},file={folder / disk['file']},format=raw,if=none,snapshot=on",
                  "-device", f"virtio-blk-device,drive=d{i}"]
    cmdline = " ".join(filter(None, (b.cmdline, tsc.runtime_cmdline(accel))))
    return [*qemu_base(accel), "-kernel", str(kernel_image or b.kernel), "-initrd", str(b.initrd), *disks,
            "-append", cmdline]


def supermin_argv(appliance_d: Path, base_cmdline: str, accel: str, kernel_image: Path | None = None) -> list[str]:
    cmdline = " ".join(filter(None, (base_cmdline, "root=/dev/vda", tsc.runtime_cmdline(accel))))
    return [*qemu_base(accel), "-kernel", str(kernel_image or appliance_d / "kernel"), "-initrd", str(appliance_d / "initrd"),
            "-drive", f"id=hd0,file={appliance_d / 'root'},format=raw,if=none,snapshot=on",
            "-device", "virtio-blk-device,drive=hd0", "-append", cmdline]


MARKS = ("init_start", "payload_start", "work_done")


def boot_marks(argv: list[str], last: str = "work_done", timeout: float = 180) -> dict[str, float]:
    """Milliseconds from QEMU's start to each probe's console line (appliance-probe:
    NAME), until LAST appears."""
    start = time.monotonic()
    found: dict[str, float] = {}
    child = proc.spawn(argv, stdout=proc.PIPE, stderr=proc.DEVNULL)
    assert child.stdout is not None
    os.set_blocking(child.stdout.fileno(), False)
    seen = b""
    try:
        while time.monotonic() - start < timeout:
            chunk = child.stdout.read(65536)
            if chunk:
                seen += chunk
                now = (time.monotonic() - start) * 1000
                for mark in MARKS:
                    if mark not in found and f"appliance-probe: {mark}".encode() in seen:
                        found[mark] = now
                if last in found:
                    return found
            elif child.poll() is not None:
                break
            else:
                time.sleep(0.002)
    finally:
        child.end(grace_s=0)
    tail = seen[-1500:].decode(errors="replace")
    raise SystemExit(f"no {last} within {timeout} s from {argv[:3]}...; console tail:\n{tail}")


# The unchanged builds start this long after the last real one: SCons keeps a file's
# stored signature only when the file is over 3 s old (SConstruct: max_drift), so a
# rebuild within 3 s of a build hashes its fresh outputs again (0.2-0.4 s here).
SETTLE_S = 4


def one_set(name: str, boots: int, accel: str, work: Path, repeats: int = 5) -> dict[str, object]:
    """Builds (ours: the set's template and its EROFS variant; supermin; warm and unchanged
    builds the median of REPEATS) and boots, interleaved with the init-only lower bound,
    all on the same Debian bzImage (no boots when BOOTS is 0)."""
    packages = SETS[name]
    erofs = f"{name}-erofs"
    builds: dict[str, dict[str, float]] = {}
    for template in (name, erofs):
        cold_dir, warm_dir = work / f"ours-cold-{template}", work / f"ours-warm-{template}"
        cache = cold_cache(work / template)
        cold = build_ours(template, cold_dir, cache)
        warm = statistics.median(build_ours(template, work / f"ours-warm{i}-{template}", cache) for i in range(repeats))
        build_ours(template, warm_dir, cache)
        time.sleep(SETTLE_S)
        unchanged = statistics.median(build_ours(template, warm_dir, cache) for _ in range(repeats))
        builds[template] = {"cold": cold, "warm": warm, "unchanged": unchanged}
    folder, erofs_folder = work / f"ours-warm-{name}" / name, work / f"ours-warm-{erofs}" / erofs
    bound_dir = work / "ours-bound"
    build_ours("minimal", bound_dir, kernelfetch.cache_dir())
    extras = work / "extras.tar.gz"
    supermin_extras(name, work / f"ours-warm-{name}", extras)
    env = supermin_env()  # outside the timed builds
    time.sleep(SETTLE_S)
    builds["supermin"] = {"cold": build_supermin(packages, work, extras, env, prepare=True),
                          "warm": statistics.median(build_supermin(packages, work, extras, env, prepare=False)
                                                    for _ in range(repeats)),
                          "unchanged": statistics.median(build_supermin(packages, work, extras, env, prepare=False,
                                                                        if_newer=True) for _ in range(repeats))}
    appliance_d = work / "appliance.d"
    sizes = {}
    for label, files in (("appliance", [folder / "initrd", *(folder / d["file"] for d in bundle.load(folder).disks)]),
                         ("appliance-erofs", [erofs_folder / "initrd",
                                              *(erofs_folder / d["file"] for d in bundle.load(erofs_folder).disks)]),
                         ("supermin", [appliance_d / "initrd", appliance_d / "root"])):
        sizes[label] = {"allocated": sum(map(du, files)), "apparent": sum(p.stat().st_size for p in files)}
    base_cmdline = bundle.load(folder).cmdline
    systems = {"appliance": (ours_argv(folder, accel), "work_done"),
               "appliance-erofs": (ours_argv(erofs_folder, accel), "work_done"),
               "supermin": (supermin_argv(appliance_d, base_cmdline, accel), "work_done"),
               "bound": (ours_argv(bound_dir / "minimal", accel), "init_start")}
    times: dict[str, list[dict[str, float]]] = {system: [] for system in systems}
    if not boots:
        return {"set": name, "packages": packages, "build_s": builds, "bytes": sizes, "boot_ms": times}
    for argv, last in systems.values():  # one warm-up each
        boot_marks(argv, last)
    order = list(systems)
    rng = random.Random(1)
    for _ in range(boots):  # interleaved, each round in its own random order: the host's mood changes for all alike
        rng.shuffle(order)
        for system in order:
            argv, last = systems[system]
            times[system].append(boot_marks(argv, last))
    return {"set": name, "packages": packages, "build_s": builds, "bytes": sizes, "boot_ms": times}


def _median(runs: list[dict[str, float]], mark: str) -> float:
    return statistics.median(r[mark] for r in runs)


def table(result: dict[str, object]) -> str:
    name = str(result["set"])
    b, s, t = result["build_s"], result["bytes"], result["boot_ms"]  # type: ignore[index]
    ours, erofs, sm = b[name], b[f"{name}-erofs"], b["supermin"]  # type: ignore[index]
    n = len(t["appliance"])  # type: ignore[index]
    bound = _median(t["bound"], "init_start") if n else 0.0  # type: ignore[index]
    lines = [f"### {name}: {' '.join(result['packages'])}", "",  # type: ignore[arg-type]
             f"| | {name} | {name}-erofs | supermin | {name} / supermin | erofs / supermin (goal) |",
             "|---|---:|---:|---:|---:|---|"]
    for what, goal in (("cold", "goal <= 2"), ("warm", "goal <= 0.5"), ("unchanged", "goal: <= 0.2 s")):
        label = {"cold": "build, cold (s)", "warm": "build, warm (s)", "unchanged": "rebuild, nothing changed (s)"}[what]
        lines.append(f"| {label} | {ours[what]:.2f} | {erofs[what]:.2f} | {sm[what]:.2f} | "
                     f"{ours[what] / sm[what]:.2f}x | {erofs[what] / sm[what]:.2f}x ({goal}) |")
    lines.append(f"| size on disk (MB) | {s['appliance']['allocated'] / 1e6:.1f} | {s['appliance-erofs']['allocated'] / 1e6:.1f}"
                 f" | {s['supermin']['allocated'] / 1e6:.1f} | | |")
    if not n:
        return "\n".join(lines)
    for mark in ("payload_start", "work_done"):
        a, e, m = (_median(t[k], mark) for k in ("appliance", "appliance-erofs", "supermin"))  # type: ignore[index]
        goal = " (goal <= 0.85)" if mark == "payload_start" else ""
        lines.append(f"| launch -> {mark}, median of {n} (ms) | {a:.0f} | {e:.0f} | {m:.0f} | {a / m:.2f}x | "
                     f"{e / m:.2f}x{goal} |")
    a, e, m = (_median(t[k], "payload_start") for k in ("appliance", "appliance-erofs", "supermin"))  # type: ignore[index]
    lines.append(f"| launch -> payload_start / the init-only bound ({bound:.0f} ms) | {a / bound:.3f}x | {e / bound:.3f}x"
                 f" | {m / bound:.3f}x | | goal <= 1.05 |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=7, help="rounds of boots (0: builds only)")
    parser.add_argument("--builds", type=int, default=5, help="warm and unchanged builds, the median of this many")
    parser.add_argument("--sets", default="python,tools")
    parser.add_argument("--accel", default="tcg")
    args = parser.parse_args()
    if shutil.which("supermin") is None:
        raise SystemExit("supermin is not installed: apt-get install supermin")
    wanted = [p for name in args.sets.split(",") for p in SETS[name]]
    status = proc.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *wanted], check=False)
    missing = [p for p in wanted if f"{p} install ok installed" not in status.stdout]
    if missing:
        raise SystemExit(f"supermin takes packages from the host: apt-get install {' '.join(missing)}")
    made_modules = not Path("/lib/modules").exists()
    if made_modules:
        Path("/lib/modules").mkdir()
    try:
        for name in args.sets.split(","):
            with tempfile.TemporaryDirectory(prefix=f"supermin-bench-{name}-") as tmp:
                print(table(one_set(name, args.boots, args.accel, Path(tmp), args.builds)), "\n", flush=True)
    finally:
        if made_modules:
            Path("/lib/modules").rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())

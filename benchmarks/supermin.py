"""supermin against appliance, side by side, on the same package sets, kernel and machine.

For each set (the python template's python3-minimal, and the tools template's
busybox-static + e2fsprogs + util-linux) this builds both appliances and boots both:

- build, cold: ours with an empty package cache (the kernel is cached for both: it is
  the same input), supermin `--prepare` + `--build`; warm: ours into a fresh build
  folder with the packages cached, supermin `--build` from the prepared supermin.d;
  nothing changed: ours again (SCons finds it up to date), supermin `--build --if-newer`.
- size: ours is the initrd (and the root disk for tools); supermin's is its initrd and
  its ext2 root; both as allocated on disk (du) and apparent.
- boot: the libguestfs way for supermin (its mini initrd loads its modules, mounts the
  ext2 root from virtio-blk and runs /init there), ours as a bundle; both on microvm
  under the same accelerator with the same extra kernel words, booted interleaved, timed
  from QEMU's start to the console line of the payload's work_done probe. Both run the
  same init (ours, from build/programs) and the same payload, so the difference is the
  appliance, not the work.

supermin builds its root from the host's own files of the packages, so they must be
installed on the host (it leaves out, silently, what is not): the script checks that
first. It also needs /lib/modules on the host to exist; the script creates an empty
one if missing and removes it again.

    .venv/bin/python benchmarks/supermin.py [--boots 7] [--sets python,tools]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance import bundle  # noqa: E402
from appliance.assemble import initramfs, kernel  # noqa: E402
from appliance.assemble.kernel import LOCK  # noqa: E402
from appliance.assemble.template import (  # noqa: E402
    TEMPLATES,  # noqa: E402
    RootDisk,
    load_template,
)
from appliance.boot import tsc  # noqa: E402

SETS = {"python": ["python3-minimal"], "tools": ["busybox-static", "e2fsprogs", "util-linux"]}
SCONS = str(Path(sys.executable).with_name("scons"))
MARK = b"appliance-probe: work_done"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - start


def build_ours(template: str, build_dir: Path, cache: Path) -> float:
    env = {**os.environ, "APPLIANCE_CACHE": str(cache)}
    return timed([SCONS, "-Q", f"BUILD_DIR={build_dir}", "appliance", f"TEMPLATE={template}"], env)


def cold_cache(work: Path) -> Path:
    """A cache with the kernel (shared, the same input to both) and no packages."""
    cache = work / "cache"
    cache.mkdir()
    (cache / "kernels").symlink_to(kernel.cache_dir() / "kernels")
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
    release = kernel.read_lock(LOCK).release
    files = kernel.fetch_debian(kernel.read_lock(LOCK))
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


def boot_ms(argv: list[str], timeout: float = 180) -> float:
    """Milliseconds from QEMU's start to the work_done console line."""
    start = time.monotonic()
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as child:
        assert child.stdout is not None
        os.set_blocking(child.stdout.fileno(), False)
        seen = b""
        try:
            while time.monotonic() - start < timeout:
                chunk = child.stdout.read(65536)
                if chunk:
                    seen += chunk
                    if MARK in seen:
                        return (time.monotonic() - start) * 1000
                elif child.poll() is not None:
                    break
                else:
                    time.sleep(0.002)
        finally:
            child.kill()
    tail = seen[-1500:].decode(errors="replace")
    raise SystemExit(f"no work_done within {timeout} s from {argv[:3]}...; console tail:\n{tail}")


def one_set(name: str, boots: int, accel: str, work: Path) -> dict[str, object]:
    packages = SETS[name]
    ours_cold, ours_warm = work / "ours-cold", work / "ours-warm"
    cache = cold_cache(work)
    cold = build_ours(name, ours_cold, cache)
    warm = build_ours(name, ours_warm, cache)
    same = build_ours(name, ours_warm, cache)  # nothing changed: SCons finds it up to date
    folder = ours_warm / name
    extras = work / "extras.tar.gz"
    supermin_extras(name, ours_warm, extras)
    env = supermin_env()  # outside the timed builds
    sm_cold = build_supermin(packages, work, extras, env, prepare=True)
    sm_warm = build_supermin(packages, work, extras, env, prepare=False)
    sm_same = build_supermin(packages, work, extras, env, prepare=False, if_newer=True)
    appliance_d = work / "appliance.d"
    ours_files = [folder / "initrd", *(folder / d["file"] for d in bundle.load(folder).disks)]
    sm_files = [appliance_d / "initrd", appliance_d / "root"]
    base_cmdline = bundle.load(folder).cmdline
    # the same kernel decompressed ahead of time and booted through its PVH entry, for
    # both (what `kernel_entry = "pvh"` builds and `appliance tune` measures)
    pvh = work / "vmlinux-pvh"
    pvh.write_bytes(kernel.pvh_vmlinux((folder / "kernel").read_bytes()))
    systems = {"appliance": ours_argv(folder, accel), "supermin": supermin_argv(appliance_d, base_cmdline, accel),
               "appliance-pvh": ours_argv(folder, accel, pvh),
               "supermin-pvh": supermin_argv(appliance_d, base_cmdline, accel, pvh)}
    times: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(boots):  # interleaved: the host's mood changes for all alike
        for system, argv in systems.items():
            times[system].append(boot_ms(argv))
    return {
        "set": name, "packages": packages,
        "build_s": {"appliance": {"cold": cold, "warm": warm, "unchanged": same},
                    "supermin": {"cold": sm_cold, "warm": sm_warm, "unchanged": sm_same}},
        "bytes": {"appliance": {"allocated": sum(map(du, ours_files)), "apparent": sum(p.stat().st_size for p in ours_files),
                                "files": {p.name: p.stat().st_size for p in ours_files}},
                  "supermin": {"allocated": sum(map(du, sm_files)), "apparent": sum(p.stat().st_size for p in sm_files),
                               "files": {p.name: du(p) for p in sm_files}}},
        "boot_ms": times,
    }


def table(result: dict[str, object]) -> str:
    b, s, t = result["build_s"], result["bytes"], result["boot_ms"]  # type: ignore[index]
    med = {k: statistics.median(v) for k, v in t.items()}  # type: ignore[union-attr]
    lines = [f"### {result['set']}: {' '.join(result['packages'])}", "",  # type: ignore[arg-type]
             "| | appliance | supermin | ratio (goal) |", "|---|---:|---:|---|",
             f"| build, cold (s) | {b['appliance']['cold']:.1f} | {b['supermin']['cold']:.1f} | "
             f"{b['appliance']['cold'] / b['supermin']['cold']:.2f}x |",
             f"| build, warm (s) | {b['appliance']['warm']:.1f} | {b['supermin']['warm']:.1f} | "
             f"{b['appliance']['warm'] / b['supermin']['warm']:.2f}x (goal <= 1) |",
             f"| rebuild, nothing changed (s) | {b['appliance']['unchanged']:.1f} | {b['supermin']['unchanged']:.1f} | "
             f"{b['appliance']['unchanged'] / b['supermin']['unchanged']:.2f}x |",
             f"| size on disk (MB) | {s['appliance']['allocated'] / 1e6:.1f} | {s['supermin']['allocated'] / 1e6:.1f} | "
             f"{s['appliance']['allocated'] / s['supermin']['allocated']:.3f}x (goal <= 0.5) |",
             f"| size, apparent (MB) | {s['appliance']['apparent'] / 1e6:.1f} | {s['supermin']['apparent'] / 1e6:.1f} | |",
             f"| QEMU start to work_done, bzImage, median of {len(t['appliance'])} (ms) | {med['appliance']:.0f} | "
             f"{med['supermin']:.0f} | {med['appliance'] / med['supermin']:.2f}x (goal <= 0.9) |",
             f"| ... min-max (ms) | {min(t['appliance']):.0f}-{max(t['appliance']):.0f} | "
             f"{min(t['supermin']):.0f}-{max(t['supermin']):.0f} | |",
             f"| the same, both on the PVH-entry kernel (ms) | {med['appliance-pvh']:.0f} | {med['supermin-pvh']:.0f} | "
             f"{med['appliance-pvh'] / med['supermin-pvh']:.2f}x |",
             f"| ... min-max (ms) | {min(t['appliance-pvh']):.0f}-{max(t['appliance-pvh']):.0f} | "
             f"{min(t['supermin-pvh']):.0f}-{max(t['supermin-pvh']):.0f} | |",
             f"| appliance on the PVH entry against supermin as it boots (ms) | {med['appliance-pvh']:.0f} | "
             f"{med['supermin']:.0f} | {med['appliance-pvh'] / med['supermin']:.2f}x |"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=7)
    parser.add_argument("--sets", default="python,tools")
    parser.add_argument("--accel", default="tcg")
    args = parser.parse_args()
    if shutil.which("supermin") is None:
        raise SystemExit("supermin is not installed: apt-get install supermin")
    wanted = [p for name in args.sets.split(",") for p in SETS[name]]
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *wanted], capture_output=True, text=True)
    missing = [p for p in wanted if f"{p} install ok installed" not in status.stdout]
    if missing:
        raise SystemExit(f"supermin takes packages from the host: apt-get install {' '.join(missing)}")
    made_modules = not Path("/lib/modules").exists()
    if made_modules:
        Path("/lib/modules").mkdir()
    try:
        for name in args.sets.split(","):
            with tempfile.TemporaryDirectory(prefix=f"supermin-bench-{name}-") as tmp:
                print(table(one_set(name, args.boots, args.accel, Path(tmp))), "\n", flush=True)
    finally:
        if made_modules:
            Path("/lib/modules").rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Guest programs (init, payloads): static C binaries built with dietlibc."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from appliance import proc
from appliance.errors import ToolMissing
from appliance.fsutil import atomic_path, atomic_write, stamp
from appliance.machines import Arch
from appliance.paths import ROOT

CFLAGS = ("-Os", "-static", "-Wall", "-Wextra", "-Werror", "-fno-asynchronous-unwind-tables",
          "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections")


DIET_LIBS = Path("/usr/lib/diet")  # dietlibc's per-architecture libraries (lib-x86_64, lib-aarch64 by multiarch)


PROGRAMS = ROOT / "recipes" / "programs"  # init.c, the payloads, probe.h


def available() -> set[str]:
    """The payload programs a template may name (recipes/programs/*.c but the init)."""
    return {p.stem for p in PROGRAMS.glob("*.c")} - {"init"}


def command(arch: Arch) -> list[str]:
    """The compiler and its flags for ARCH (also SCons' signature of every program).
    For aarch64: Debian's cross gcc with dietlibc's arm64 build (multiarch); its linker
    aligns segments to 64 KiB pages by default, 40 KiB of padding per program."""
    pages = ["-Wl,-z,max-page-size=4096"] if arch is Arch.AARCH64 else []
    return ["diet", f"{arch.cross_prefix}gcc", *CFLAGS, *pages]


def compile_static(source: Path, output: Path, arch: Arch = Arch.X86_64) -> int:
    """Compile SOURCE into a stripped static binary for ARCH at OUTPUT; return its size."""
    prefix = arch.cross_prefix
    if arch is not Arch.X86_64 and not (DIET_LIBS / f"lib-{arch.value}").is_dir():
        raise ToolMissing(f"dietlibc for {arch.debian} is not installed ({DIET_LIBS}/lib-{arch.value}): "
                          f"dpkg --add-architecture {arch.debian}, apt-get update, apt-get install "
                          f"dietlibc-dev:{arch.debian} (./setup does all three)")
    with atomic_path(output) as tmp:
        proc.run([*command(arch), f"-I{source.parent}", "-o", str(tmp), str(source)])
        proc.run([f"{prefix}strip", "--strip-all", "-R", ".comment", str(tmp)])
    return output.stat().st_size


def _toolchain_identity(arch: Arch) -> str:
    """What changes when the compiler or dietlibc is upgraded: their files' size and time
    (cheap: no process is run)."""
    files = (shutil.which(f"{arch.cross_prefix}gcc"), shutil.which("diet"), DIET_LIBS / f"lib-{arch.value}" / "libc.a")
    return "\n".join(stamp(path) for path in files)


def cache_key(source: Path, arch: Arch) -> str:
    """The compiled program's identity: its source, the headers beside it, the command and
    the toolchain. Two build folders compiling the same inputs share one cached binary."""
    digest = hashlib.sha256("\0".join([*command(arch), _toolchain_identity(arch)]).encode())
    for path in [source, *sorted(source.parent.glob("*.h"))]:
        digest.update(f"\0{path.name}\0".encode() + path.read_bytes())
    return digest.hexdigest()


def compile_cached(source: Path, output: Path, arch: Arch, cache: Path) -> tuple[int, bool]:
    """compile_static through CACHE (keyed by cache_key): the size, and whether the
    binary came from the cache (a warm build into a fresh folder compiles nothing)."""
    kept = cache / f"{source.stem}-{arch.value}-{cache_key(source, arch)[:32]}"
    if kept.is_file():
        atomic_write(output, kept.read_bytes(), 0o755)
        return output.stat().st_size, True
    size = compile_static(source, output, arch)
    atomic_write(kept, output.read_bytes(), 0o755)
    return size, False


def toolchain_versions() -> dict[str, str]:
    """Versions recorded in bundle.json so a build can be reproduced."""
    # `diet -v` exits 1, so ask dpkg, which installed it.
    diet = proc.run(["dpkg-query", "-W", "-f", "${Version}", "dietlibc-dev"], timeout=30)
    gcc = proc.run(["gcc", "-dumpfullversion"], timeout=30)
    return {"dietlibc": diet.stdout.strip(), "gcc": gcc.stdout.strip()}

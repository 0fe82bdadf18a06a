"""Guest programs (init, payloads): static C binaries built with dietlibc."""

from __future__ import annotations

from pathlib import Path

from appliance import proc
from appliance.errors import ToolMissing
from appliance.fsutil import atomic_path
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


def toolchain_versions() -> dict[str, str]:
    """Versions recorded in bundle.json so a build can be reproduced."""
    # `diet -v` exits 1, so ask dpkg, which installed it.
    diet = proc.run(["dpkg-query", "-W", "-f", "${Version}", "dietlibc-dev"], timeout=30)
    gcc = proc.run(["gcc", "-dumpfullversion"], timeout=30)
    return {"dietlibc": diet.stdout.strip(), "gcc": gcc.stdout.strip()}

"""Guest programs (init, payloads): static C binaries built with dietlibc."""

from __future__ import annotations

from pathlib import Path

from appliance import proc
from appliance.fsutil import atomic_path

CFLAGS = ("-Os", "-static", "-Wall", "-Wextra", "-Werror", "-fno-asynchronous-unwind-tables",
          "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections")


def compile_static(source: Path, output: Path) -> int:
    """Compile SOURCE into a stripped static binary at OUTPUT; return its size."""
    with atomic_path(output) as tmp:
        proc.run(["diet", "gcc", *CFLAGS, f"-I{source.parent}", "-o", str(tmp), str(source)])
        proc.run(["strip", "--strip-all", "-R", ".comment", str(tmp)])
    return output.stat().st_size


def toolchain_versions() -> dict[str, str]:
    """Versions recorded in bundle.json so a build can be reproduced."""
    # `diet -v` exits 1, so ask dpkg, which installed it.
    diet = proc.run(["dpkg-query", "-W", "-f", "${Version}", "dietlibc-dev"], timeout=30)
    gcc = proc.run(["gcc", "-dumpfullversion"], timeout=30)
    return {"dietlibc": diet.stdout.strip(), "gcc": gcc.stdout.strip()}

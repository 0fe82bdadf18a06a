"""What the benchmarks share: building a bundle as a user does."""

from __future__ import annotations

import sys
from pathlib import Path

from appliance import bundle, proc

ROOT = Path(__file__).resolve().parent.parent
SCONS = str(Path(sys.executable).with_name("scons"))  # the virtualenv's, beside the Python that runs us


def build_bundle(template: str | Path, suffix: str = "", **options: str) -> bundle.Bundle:
    """`scons appliance TEMPLATE=... KEY=VALUE...` in the checkout, and the bundle it made
    in build/: the template's name, with the `+SUFFIX` the options add (MACHINE=q35-qboot
    makes "+q35-qboot", ARCH=aarch64 "+aarch64")."""
    words = [f"{key}={value}" for key, value in options.items()]
    proc.run([SCONS, "-Q", "appliance", f"TEMPLATE={template}", *words], cwd=ROOT)
    name = Path(template).stem if str(template).endswith(".toml") else str(template)
    return bundle.load(ROOT / "build" / (f"{name}+{suffix}" if suffix else name))


def at(run: dict, name: str) -> float | None:
    """When event NAME happened in a run record (ms from QEMU's launch), or None."""
    return next((e["t_ms"] for e in run["events"] if e["name"] == name), None)

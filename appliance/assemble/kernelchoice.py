"""Which kernel a build uses, and what it is: the pinned Debian kernel (its lock), the
minimal kernel (its recipe), the one the template's image carries (`kernel = "image"`),
or KERNEL= (the user's image, MODULES= beside it).

`signature()` is cheap (SCons reads it on every run to know whether the kernel
changed); `files()` fetches or builds the kernel when the cache lacks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.assemble import imagekernel, kernelfetch, minikernel
from appliance.assemble.config import BuildConfig
from appliance.assemble.template import Kernel


def lock(config: BuildConfig) -> Path:
    """The lock file of the Debian kernel for the template's architecture."""
    return kernelfetch.lock_for(config.template.arch)


def minimal_recipe(config: BuildConfig) -> minikernel.Recipe:
    """The minimal kernel's recipe for this build (the template's compression and
    fragments; KERNEL_SRC's tree as its source when given)."""
    template = config.template
    source_id = minikernel.own_source(Path(config.kernel_src))[1] if config.kernel_src else None
    return minikernel.recipe(str(template.kernel_compression), template.kernel_fragments, source_id)


def from_image(config: BuildConfig) -> bool:
    """Whether the kernel is the one the template's image carries (KERNEL= still wins)."""
    return not config.own_kernel and config.template.kernel is Kernel.IMAGE


def signature(config: BuildConfig) -> str:
    """What the kernel (and its modules) are, for SCons: the lock file, the minimal
    recipe's key, or for KERNEL= and MODULES= their paths with size and mtime (a kernel
    rebuilt in place, or a depmod run, then rebuilds what used them)."""
    if config.minimal:
        return "minimal " + minimal_recipe(config).key()
    if from_image(config):
        return "image " + imagekernel.key(config.template)
    if not config.own_kernel:
        return lock(config).read_text()
    paths = [Path(config.own_kernel)] + ([Path(config.own_modules) / "modules.dep"] if config.own_modules else [])
    stamps = [f"{p}={p.stat().st_size}:{p.stat().st_mtime_ns}" if p.exists() else f"{p}=missing" for p in paths]
    return " ".join(stamps)


def files(config: BuildConfig) -> kernelfetch.KernelFiles:
    """The kernel's image and modules: fetched, built or the user's (cached after the first time)."""
    if config.own_kernel:
        return kernelfetch.own_kernel(Path(config.own_kernel), Path(config.own_modules) if config.own_modules else None)
    if config.minimal:
        source = (minikernel.own_source(Path(config.kernel_src))[0] if config.kernel_src
                  else minikernel.locked_source())
        return minikernel.build(minimal_recipe(config), source, kernelfetch.cache_dir(), verbose=config.verbose)
    if from_image(config):
        return imagekernel.files(config.template, kernelfetch.cache_dir())
    return kernelfetch.fetch_debian(kernelfetch.read_lock(lock(config)))


def config_symbols(files: kernelfetch.KernelFiles) -> dict[str, str] | None:
    """The kernel's configuration (CONFIG_X -> value), or None when it is not known (a
    KERNEL= image): the minimal kernel's beside its image, Debian's in boot/config-<release>."""
    for path in (files.image.parent / "config", files.image.parent / f"config-{files.release}"):
        if path.is_file():
            pairs = (line.split("=", 1) for line in path.read_text(errors="replace").splitlines()
                     if line.startswith("CONFIG_") and "=" in line)
            return {key: value for key, value in pairs}
    return None


def missing(config_text: dict[str, str] | None, needs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The needed symbols the kernel lacks (built in or as a module); none when unknown."""
    if config_text is None:
        return []
    return [(symbol, why) for symbol, why in needs if config_text.get(f"CONFIG_{symbol}") not in ("y", "m")]


def facts(config: BuildConfig, release: str) -> dict[str, Any]:
    """What bundle.json records of the kernel: its release and where it came from."""
    if config.own_kernel:
        return {"release": release, "source": "KERNEL", "lock": None}
    if config.minimal:
        recipe = minimal_recipe(config)
        return {"release": release, "source": "minimal", "recipe": recipe.key(),
                "compression": recipe.compression, "fragments": [*minikernel.FRAGMENTS, *config.template.kernel_fragments],
                "kernel_src": config.kernel_src or None,
                "lock": None if config.kernel_src else minikernel.read_lock(minikernel.SOURCE_LOCK).__dict__}
    if from_image(config):
        assert config.template.image is not None
        return {"release": release, "source": "image", "image": config.template.image[1], "lock": None}
    return {"release": release, "source": lock(config).name, "lock": kernelfetch.read_lock(lock(config)).__dict__,
            "entry": config.template.kernel_entry}

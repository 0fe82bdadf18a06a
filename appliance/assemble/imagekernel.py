"""The image's own kernel (`kernel = "image"`): the kernel a distribution's image carries
in /boot, with its configuration, its modules tree and its initrd, taken out of the
image once per image into the cache. From there the build uses it as it uses KERNEL=
with MODULES=: the kernel boots, our initramfs loads the image's modules (their
dependency closure, as for Debian's kernel) and mounts the image as the root. With
`[image] initrd = "image"` the image's own initrd (initramfs-tools', dracut's) boots
too, ours appended to it (actions.make_initrd, docs/TEMPLATES.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from appliance.assemble import kernelfetch, oci
from appliance.assemble.layout import Placed
from appliance.assemble.template import Template
from appliance.errors import TemplateError

FOLDER = "image-kernels"  # under the cache
FORMAT = "2 "  # what an extraction holds (2: the initrd too); part of its key
_KERNEL = re.compile(r"boot/vmlinuz-(?P<release>[^/]+)")
MODULE_ROOTS = ("usr/lib/modules", "lib/modules")  # merged /usr, or not


def _release_key(release: str) -> list[object]:
    """A release sorted as a version: 6.1.0-57-amd64 after 6.1.0-9-amd64."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", release)]


def pick(tree: list[Placed]) -> tuple[Placed, str]:
    """The image's kernel and its release: the newest /boot/vmlinuz-RELEASE (what the
    image's own boot loader would boot by default)."""
    found = [(p, m["release"]) for p in tree if p.entry.kind == "file" and (m := _KERNEL.fullmatch(p.entry.path))]
    if not found:
        raise TemplateError("kernel = 'image': the image has no /boot/vmlinuz-RELEASE (install a kernel in it, "
                            "e.g. linux-image-amd64), or use kernel = 'debian'")
    return max(found, key=lambda pair: _release_key(pair[1]))


def modules_of(tree: list[Placed], release: str) -> tuple[str, list[Placed]]:
    """The image's modules tree of RELEASE: its folder in the image and its files."""
    for root in MODULE_ROOTS:
        prefix = f"{root}/{release}/"
        files = [p for p in tree if p.entry.path.startswith(prefix) and p.entry.kind == "file"]
        if files:
            return prefix, files
    raise TemplateError(f"kernel = 'image': the image has /boot/vmlinuz-{release} but no lib/modules/{release}: "
                        "install the kernel's package whole")


def key(template: Template) -> str:
    """The cache's name for the kernel of TEMPLATE's image: the image's own signature."""
    assert template.image is not None, "kernel = 'image' is checked to come with [image]"
    return hashlib.sha256((FORMAT + oci.signature(template.image, Path(template.folder))).encode()).hexdigest()[:20]


def files(template: Template, cache: Path) -> kernelfetch.KernelFiles:
    """The image's kernel, configuration and modules, from the cache or taken out of the
    image now (once: the image's signature names them)."""
    folder = cache / FOLDER / key(template)
    if not (folder / "release").is_file():
        _extract(template, folder)
    release = (folder / "release").read_text().strip()
    return kernelfetch.KernelFiles(folder / f"vmlinuz-{release}", folder / "modules" / release, release)


def _extract(template: Template, folder: Path) -> None:
    assert template.image is not None
    tree = oci.apply(oci.load(template.image[1], template.image[0], Path(template.folder), template.arch))
    image, release = pick(tree)
    why = kernelfetch.image_problem(image.entry.data[:65536], len(image.entry.data))
    if why:  # one line now, and nothing cached
        raise TemplateError(f"kernel = 'image': the image's /boot/vmlinuz-{release} cannot boot: it is {why}; "
                            "reinstall the kernel's package in the image")
    prefix, modules = modules_of(tree, release)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # an earlier extraction cut short
    try:
        (tmp / "modules" / release).mkdir(parents=True)
        (tmp / f"vmlinuz-{release}").write_bytes(image.entry.data)
        config = next((p for p in tree if p.entry.path == f"boot/config-{release}"), None)
        if config is not None:  # what kernelchoice.config_symbols reads to check the kernel has what the template needs
            (tmp / f"config-{release}").write_bytes(config.entry.data)
        for placed in modules:
            path = tmp / "modules" / release / placed.entry.path.removeprefix(prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(placed.entry.data)
        initrd = next((p for p in tree if p.entry.path == f"boot/initrd.img-{release}"), None)
        if initrd is not None:  # what [image] initrd = "image" boots
            (tmp / f"initrd.img-{release}").write_bytes(initrd.entry.data)
        (tmp / "release").write_text(release + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # whole or not at all: the folder's presence says it is complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def initrd(template: Template, cache: Path, release: str) -> Path:
    """The image's own initrd of RELEASE (`[image] initrd = "image"`), from the cache
    files() filled; one line if the image has none."""
    path = cache / FOLDER / key(template) / f"initrd.img-{release}"
    if not path.is_file():
        raise TemplateError(f"[image] initrd = 'image': the image has no /boot/initrd.img-{release} (install "
                            "initramfs-tools or dracut in it), or use initrd = 'appliance'")
    return path

"""The build's resolved configuration: the template as the build options changed it,
and the paths of everything the build writes, derived from it. Data only: what has to
run a tool or read the network to be known (the kernel's files, QEMU's version, qboot's
tree) is a plain function of the module that owns it (kernelchoice, devicetree,
firmware). SCons makes one in actions.configure(); tests make their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from appliance.assemble.template import Kernel, RootDisk, Template
from appliance.machines import Arch, shape
from appliance.paths import ROOT


@dataclass(frozen=True)
class BuildConfig:
    template: Template
    own_kernel: str  # KERNEL=..., or "" for the template's kernel
    source_date_epoch: int
    own_modules: str = ""  # MODULES=..., with KERNEL=
    qboot_src: str = ""  # QBOOT_SRC=..., or "" for Debian's qemu source package
    kernel_src: str = ""  # KERNEL_SRC=..., or "" for the locked linux-source package
    verbose: bool = False  # VERBOSE=1: show the kernel build as it goes
    build_dir: str = "#build"  # BUILD_DIR=...: where outputs go, as SCons names it ('#' = the checkout's top)
    variant: str = ""  # what the options changed from the template as written ("" = nothing)

    @property
    def out_name(self) -> str:
        """The bundle's folder: the template's name, and its variant after a '+', so
        `build/<template>` always means the template as written."""
        return f"{self.template.name}+{self.variant}" if self.variant else self.template.name

    def out(self, *parts: str) -> str:
        """An output path under BUILD_DIR, as SCons names it."""
        return "/".join((self.build_dir, *parts))

    def real_path(self, *parts: str) -> Path:
        """An output under BUILD_DIR as a real path (SCons hands sources to actions by such paths)."""
        top = self.build_dir.removeprefix("#")
        return (ROOT / top if self.build_dir.startswith("#") else Path(top)).joinpath(*parts)

    @property
    def programs_dir(self) -> str:
        """Where the guest programs go: one folder per architecture."""
        arch = self.template.arch
        return "programs" if arch is Arch.X86_64 else f"programs-{arch.value}"

    @property
    def programs_path(self) -> Path:
        return self.real_path(self.programs_dir)

    @property
    def facts_path(self) -> Path:
        """make_initrd's facts (every file with its source, the initrd's sizes, the
        modules, the kernel's virtio transports), which make_bundle records."""
        return self.real_path("facts", f"{self.out_name}.json")

    @property
    def minimal(self) -> bool:
        return not self.own_kernel and self.template.kernel is Kernel.MINIMAL

    @property
    def pvh_entry(self) -> bool:
        """The Debian kernel's bzImage is decompressed at build time and booted through
        its PVH entry (a KERNEL= image too, when the template asks)."""
        return not self.minimal and self.template.kernel_entry == "pvh"

    def template_file(self, src: str) -> str:
        """A [[files]] src as SCons names it: '#' marks a path from the checkout's top,
        and must not be put before an absolute one (a template given by its full path)."""
        path = Path(self.template.folder) / src
        return str(path) if path.is_absolute() else f"#{path}"

    def iso_boots(self) -> bool:
        """Whether an ISO of this build can reach its disks when booted on a PC."""
        if self.template.arch is not Arch.X86_64:
            return False  # the ISO boots through isolinux, a PC's boot loader
        return self.template.root is RootDisk.NONE or shape(self.template.machine).virtio_transport == "virtio_pci"

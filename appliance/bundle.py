"""bundle.json: the manifest of a bootable bundle, and its verification.

A bundle is a directory holding `kernel`, `initrd` and `bundle.json`. The manifest lists
every file with its size and sha256, and carries the sha256 of its own canonical JSON
(`manifest_sha256`), so an edit after the build (a changed command line, memory size,
file list) is caught too. `load()` refuses a bundle whose files or manifest differ, and
a file name that would leave the bundle's directory. To boot a bundle with other kernel
arguments, give them at boot (`compare --append-b`), not by editing the manifest.

This module owns the format (docs/CONTRACTS.md, "bundle.json"): `write_manifest` is the
one writer of a new manifest (from a typed Spec), and `Bundle`'s properties are how the
rest of the package reads one; nobody else reads raw manifest keys. A manifest of
another format is refused in one line (rebuild the bundle): there are no old-format
branches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from appliance import seal
from appliance.errors import BundleError
from appliance.fsutil import atomic_write, sha256_file
from appliance.machines import Arch, Machine, shape, transport_problem
from appliance.netspec import Forward, Ready, parse_forward, parse_ready
from appliance.probes import probe_table

FORMAT = 2  # 2: every key below is present (1 left some out, read with defaults)
MANIFEST = "bundle.json"
DIGEST = seal.FIELD
FILES = ("kernel", "initrd")
DTB = "board.dtb"
BOOT_DISK = "boot.img"  # [vm] loader builds: the GPT disk the firmware boots (assemble/bootdisk.py)
BOOT_KIND = "boot"  # its kind among the bundle's disks
DISK_KINDS = ("virtio-blk", "pmem", BOOT_KIND)
UKI = "uki.efi"  # q35-ovmf builds: systemd's EFI stub with the kernel, initrd and command line
REQUIRED = ("name", "files", "disks", "cmdline", "cmdline_base", "machine", "arch", "memory_mib", "cpus", "probes",
            "build", "device_tree", "virtio_transports", "kernel_acpi", "network", "service", "profiled")


@dataclass(frozen=True)
class Profiled:
    """profiled in a bundle: the channel it writes to, the guest's device, the sampling."""

    channel: str  # "serial" or "virtio"
    device: str
    sample_ms: int


@dataclass(frozen=True)
class Spec:
    """What the build says about a bundle; write_manifest adds the files' digests, the
    probe table and the format, and seals it."""

    name: str
    cmdline: str  # the machine's words, panic=-1 and the template's
    cmdline_base: str  # the same without the profile's words (booting as another machine)
    machine: Machine
    memory_mib: int
    cpus: int
    user_probes: tuple[tuple[int, str], ...]
    build: dict[str, Any]  # how it was built: template, kernel, tools, initrd sizes, contents
    disks: tuple[tuple[str, str], ...] = ()  # (file, kind)
    firmware: bool = False  # firmware.bin (q35-qboot)
    uki: bool = False  # uki.efi (q35-ovmf): the kernel, initrd and command line as one EFI program
    device_tree: dict[str, Any] | None = None  # board.dtb's facts (aarch64)
    virtio_transports: tuple[str, ...] = ()  # the kernel's, built in or shipped
    kernel_acpi: bool = True
    network: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    profiled: dict[str, Any] | None = None
    image_init: dict[str, Any] | None = None  # {"units": [...]}: the image's own init (systemd) boots it


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    cdrom: Path | None = None  # boot this ISO (El Torito) instead of -kernel/-initrd
    kernel_file: Path | None = None  # boot this kernel instead of the bundle's (a derived one, e.g. PVH)
    initrd_file: Path | None = None  # boot this initrd instead (a derived one: recompressed, fewer modules)

    @property
    def kernel(self) -> Path:
        return self.kernel_file or self.path / "kernel"

    def with_kernel(self, image: Path) -> Bundle:
        """The same bundle booting another kernel image (not recorded in its manifest)."""
        return replace(self, kernel_file=image)

    @property
    def initrd(self) -> Path:
        return self.initrd_file or self.path / "initrd"

    def with_initrd(self, image: Path) -> Bundle:
        """The same bundle booting another initrd (not recorded in its manifest)."""
        return replace(self, initrd_file=image)

    @property
    def machine(self) -> Machine:
        return Machine(self.manifest["machine"])

    def cmdline_on(self, machine: Machine) -> str:
        """The kernel command line of this bundle booted as MACHINE: its words, then ours."""
        return f"{shape(machine).cmdline} {self.cmdline_base}"

    def with_machine(self, machine: Machine) -> Bundle:
        """The same bundle booted as another machine (the runner's --machine)."""
        if shape(machine).arch is not self.arch:
            raise BundleError(f"bundle {self.path} is {self.arch.value}; {machine.value} is an "
                              f"{shape(machine).arch.value} machine: build the template for it")
        why = transport_problem(self.virtio_transports, self.uses_virtio, machine)
        if why:
            raise BundleError(f"bundle {self.path} cannot boot as {machine.value}: {why}")
        if machine is Machine.Q35_QBOOT and self.firmware is None:
            raise BundleError(f"bundle {self.path} has no firmware.bin for q35-qboot: build it with MACHINE=q35-qboot")
        if machine is not Machine.Q35_OVMF and self.boot_disk is not None:
            raise BundleError(f"bundle {self.path} boots through systemd-boot from {BOOT_DISK}, which needs UEFI "
                              "firmware (q35-ovmf): build it without LOADER= to boot it as another machine")
        manifest = {**self.manifest, "machine": machine.value, "cmdline": self.cmdline_on(machine)}
        return replace(self, manifest=manifest)

    RUN_SETTINGS = ("cpu_model", "cpus", "memory_mib")  # what a boot may set without a rebuild

    def with_run(self, **settings: object) -> Bundle:
        """The same bundle booted with other VM settings (vCPU model, count, memory); the
        manifest on disk is not changed."""
        unknown = set(settings) - set(self.RUN_SETTINGS)
        if unknown:
            raise ValueError(f"not run settings: {sorted(unknown)}")
        if self.dtb is not None and settings.get("cpus", self.cpus) != self.cpus:
            raise BundleError(f"bundle {self.path}'s device tree lists {self.cpus} vCPU(s): "
                              "set [vm] cpus in the template and rebuild (QEMU updates only the memory in a given tree)")
        return replace(self, manifest={**self.manifest, **settings})

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def memory_mib(self) -> int:
        return int(self.manifest["memory_mib"])

    @property
    def cpus(self) -> int:
        return int(self.manifest["cpus"])

    @property
    def cpu_model(self) -> str | None:
        """The vCPU model a boot asked for (with_run), or None: QEMU's default for the accelerator."""
        found = self.manifest.get("cpu_model")
        return str(found) if found else None

    @property
    def cmdline_base(self) -> str:
        return str(self.manifest["cmdline_base"])

    @property
    def kernel_acpi(self) -> bool:
        """Whether the kernel has ACPI (the minimal kernel has not: see qemu.argv)."""
        return bool(self.manifest["kernel_acpi"])

    @property
    def virtio_transports(self) -> tuple[str, ...]:
        return tuple(self.manifest["virtio_transports"])

    @property
    def profiled(self) -> Profiled | None:
        spec = self.manifest["profiled"]
        return Profiled(spec["channel"], spec["device"], int(spec["sample_ms"])) if spec else None

    @property
    def restrict(self) -> bool:
        """A network isolated from the host's (QEMU's restrict=on)."""
        return bool((self.manifest["network"] or {}).get("restrict"))

    @property
    def build(self) -> dict[str, Any]:
        """How it was built (free-form provenance: template, kernel, tools, sizes, contents)."""
        return dict(self.manifest["build"])

    @property
    def kernel_facts(self) -> dict[str, Any]:
        """The kernel's release and where it came from (source: a lock file, minimal, KERNEL)."""
        return dict(self.build["kernel"])

    @property
    def kernel_release(self) -> str:
        return str(self.kernel_facts["release"])

    @property
    def minimal_kernel(self) -> bool:
        return self.kernel_facts.get("source") == "minimal"

    @property
    def initrd_programs(self) -> dict[str, int]:
        return dict(self.build["initrd"]["programs"])

    @property
    def initrd_modules(self) -> dict[str, int]:
        return dict(self.build["initrd"]["modules"])

    @property
    def contents(self) -> list[dict[str, Any]]:
        """Every file of the initrd and the root disk with its source and size."""
        return list(self.build["contents"])

    @property
    def shell(self) -> tuple[str, ...]:
        """The interactive program the init runs on the console after the payload, if any."""
        return tuple(self.build.get("template", {}).get("shell") or ())

    @property
    def has_our_init(self) -> bool:
        """Whether the init is ours (it emits init_start and the other init probes)."""
        return "init" in self.initrd_programs or "appliance/init" in self.initrd_programs  # the image's initrd's

    @property
    def device_tree(self) -> dict[str, Any] | None:
        """What the build recorded of board.dtb (aarch64): nodes, what was pruned."""
        found = self.manifest["device_tree"]
        return dict(found) if found else None

    @property
    def uses_virtio(self) -> bool:
        return bool(self.disks or self.manifest["network"] or self.manifest["service"])

    @property
    def arch(self) -> Arch:
        """The guest architecture."""
        try:
            return Arch(self.manifest["arch"])
        except ValueError:
            raise BundleError(f"bundle {self.path} is for {self.manifest['arch']!r}, an architecture this runner "
                              f"does not know (it knows: {', '.join(a.value for a in Arch)})") from None

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Every file of the bundle with its size and sha256."""
        return dict(self.manifest["files"])

    @property
    def dtb(self) -> Path | None:
        """The device tree the kernel boots with (aarch64 bundles)."""
        return self.path / DTB if DTB in self.manifest["files"] else None

    @property
    def firmware(self) -> Path | None:
        return self.path / "firmware.bin" if "firmware.bin" in self.manifest["files"] else None

    @property
    def uki(self) -> Path | None:
        """The Unified Kernel Image a q35-ovmf build carries (kernel, initrd, cmdline in one)."""
        return self.path / UKI if UKI in self.manifest["files"] else None

    @property
    def disks(self) -> list[dict[str, str]]:
        return list(self.manifest["disks"])

    @property
    def boot_disk(self) -> Path | None:
        """The disk the firmware boots through its boot loader ([vm] loader), if any."""
        found = [d["file"] for d in self.manifest["disks"] if d["kind"] == BOOT_KIND]
        return self.path / found[0] if found else None

    @property
    def cmdline(self) -> str:
        return str(self.manifest["cmdline"])

    @property
    def probe_table(self) -> dict[tuple[int, int], str]:
        return {(p["port"], p["code"]): p["name"] for p in self.manifest["probes"]}

    @property
    def forwards(self) -> tuple[Forward, ...] | None:
        """The port forwards of a bundle with a network; None: it has no network."""
        network = self.manifest["network"]
        if network is None:
            return None
        return tuple(parse_forward(spec) for spec in network["forwards"])

    @property
    def ready(self) -> Ready | None:
        """A service bundle's readiness check (None: the payload runs to its end)."""
        service = self.manifest["service"]
        return parse_ready(service["ready"]) if service else None

    @property
    def image_init(self) -> bool:
        """Whether the image's own init (systemd) boots it: it ends its boot itself, after
        its report (assemble/imageinit.py), not at a service's answer."""
        return self.manifest.get("image_init") is not None

    @property
    def image_units(self) -> tuple[str, ...]:
        """The units an image's own init probes ([image] units)."""
        return tuple((self.manifest.get("image_init") or {}).get("units", ()))

    @property
    def send(self) -> bytes:
        return str((self.manifest["service"] or {}).get("send", "")).encode()

    @property
    def digest(self) -> str:
        """One digest for the whole bundle: that of its manifest, which lists every file."""
        return hashlib.sha256((self.path / MANIFEST).read_bytes()).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def manifest(folder: Path, spec: Spec) -> dict[str, Any]:
    """The whole manifest of the bundle in FOLDER that SPEC describes (not yet sealed)."""
    table = probe_table(spec.user_probes)
    extra = (*(f for f, _ in spec.disks), *(("firmware.bin",) if spec.firmware else ()),
             *((DTB,) if spec.device_tree is not None else ()), *((UKI,) if spec.uki else ()))
    return {
        "format": FORMAT,
        "name": spec.name,
        "files": {f: file_entry(folder / f) for f in (*FILES, *extra)},
        "disks": [{"file": f, "kind": kind} for f, kind in spec.disks],
        "cmdline": spec.cmdline,
        "cmdline_base": spec.cmdline_base,
        "machine": spec.machine.value,
        "arch": shape(spec.machine).arch.value,
        "memory_mib": spec.memory_mib,
        "cpus": spec.cpus,
        "probes": [{"port": port, "code": code, "name": n} for (port, code), n in sorted(table.items())],
        "build": spec.build,
        "device_tree": spec.device_tree,
        "virtio_transports": list(spec.virtio_transports),
        "kernel_acpi": spec.kernel_acpi,
        "network": spec.network,
        "service": spec.service,
        "profiled": spec.profiled,
        **({"image_init": spec.image_init} if spec.image_init is not None else {}),
    }


def write_manifest(folder: Path, spec: Spec) -> None:
    """Write FOLDER's bundle.json for SPEC, sealed: the one writer of a new manifest."""
    write(folder, manifest(folder, spec))


def write(folder: Path, data: dict[str, Any]) -> None:
    """Seal DATA (a whole manifest) and write it as FOLDER's bundle.json."""
    atomic_write(folder / MANIFEST, (json.dumps(seal.sealed(data), indent=2, sort_keys=True) + "\n").encode())


def bad_name(name: object) -> str | None:
    """Why NAME cannot be a file of a bundle (it must be a plain relative path inside it)."""
    if not isinstance(name, str) or not name:
        return f"file name {name!r} is not a path"
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or name.startswith("~"):
        return f"file name {name!r} leaves the bundle's directory"
    return None


def load(folder: Path, verify: bool = True) -> Bundle:
    """Read and (by default) verify a bundle; raise BundleError saying what is wrong."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"{folder} is not a bundle (no {MANIFEST}): build one with `scons appliance`")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}): rebuild the bundle") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise BundleError(f"{path} has format {found!r}, this tool reads format {FORMAT}: rebuild the bundle "
                          "(scons appliance TEMPLATE=<its template>)")
    for key in REQUIRED:
        if key not in data:
            raise BundleError(f"{path} lacks '{key}': rebuild the bundle")
    if not isinstance(data["build"], dict) or not all(k in data["build"] for k in ("kernel", "initrd", "contents")):
        raise BundleError(f"{path} lacks its build facts (kernel, initrd, contents): rebuild the bundle")
    wrong = type_problem(data)
    if wrong:
        raise BundleError(f"{path}: {wrong}: rebuild the bundle")
    if DIGEST not in data:
        raise BundleError(f"{path} has no digest of its own (built before manifests were sealed): rebuild the bundle")
    if data[DIGEST] != seal.own_digest(data):
        raise BundleError(f"{path} was edited after the build (its own digest does not match): rebuild the bundle; "
                          "to try other kernel arguments, give them at boot (compare --append-b)")
    for name in data["files"]:
        why = bad_name(name)
        if why:
            raise BundleError(f"{path}: {why}: refusing it")
    bundle = Bundle(folder, data)
    if verify:
        for problem in problems(bundle):
            raise BundleError(f"bundle {folder}: {problem}: rebuild it or fetch it again")
    return bundle


_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "files": dict, "disks": list, "cmdline": str, "cmdline_base": str, "machine": str, "arch": str,
    "memory_mib": int, "cpus": int, "probes": list, "virtio_transports": list, "kernel_acpi": bool,
    "device_tree": (dict, type(None)), "network": (dict, type(None)), "service": (dict, type(None)),
    "profiled": (dict, type(None)),
}


def type_problem(data: dict[str, Any]) -> str | None:
    """What in a sealed manifest has the wrong type or value (one a build never writes:
    a manifest resealed by hand), or None."""
    for key, kind in _TYPES.items():
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"'{key}' is {type(value).__name__} {value!r:.40}, not {getattr(kind, '__name__', 'an object')}"
    units = data.get("image_init", {"units": []})
    if not (isinstance(units, dict) and isinstance(units.get("units"), list)
            and all(isinstance(u, str) for u in units["units"])):
        return f"'image_init' is {units!r:.40}, not an object with a list of units"
    if data["machine"] not in {m.value for m in Machine}:
        return f"machine {data['machine']!r:.40} is not one of: {', '.join(m.value for m in Machine)}"
    if data["arch"] not in {a.value for a in Arch}:
        return f"arch {data['arch']!r:.40} is not one of: {', '.join(a.value for a in Arch)}"
    if not 16 <= data["memory_mib"] <= 65536 or not 1 <= data["cpus"] <= 64:
        return f"memory_mib {data['memory_mib']} or cpus {data['cpus']} is out of range"
    for name, entry in data["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)):
            return f"file {name!r:.40} has no size and sha256"
    for disk in data["disks"]:
        if not (isinstance(disk, dict) and disk.get("file") in data["files"] and disk.get("kind") in DISK_KINDS):
            return f"disk {disk!r:.60} is not a listed file of kind {', '.join(DISK_KINDS)}"
    for probe in data["probes"]:
        if not (isinstance(probe, dict) and isinstance(probe.get("port"), int) and isinstance(probe.get("code"), int)
                and isinstance(probe.get("name"), str)):
            return f"probe {probe!r:.60} is not a port, code and name"
    return None


def strays(bundle: Bundle) -> list[str]:
    """Files in the bundle's directory that its manifest does not list."""
    listed = {*bundle.manifest["files"], MANIFEST}
    return sorted(str(p.relative_to(bundle.path)) for p in bundle.path.rglob("*")
                  if (p.is_file() or p.is_symlink()) and str(p.relative_to(bundle.path)) not in listed)


def problems(bundle: Bundle) -> list[str]:
    """Every way the bundle's files differ from its manifest (empty when intact)."""
    found = []
    for name, expected in sorted(bundle.manifest["files"].items()):
        path = bundle.path / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif path.stat().st_size != expected["size"]:
            found.append(f"{name} has {path.stat().st_size} bytes, manifest says {expected['size']}")
        elif sha256_file(path) != expected["sha256"]:
            found.append(f"{name} does not match its sha256 in {MANIFEST}")
    return found

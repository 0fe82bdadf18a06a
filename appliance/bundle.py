"""bundle.json: the manifest of a bootable bundle, and its verification.

A bundle is a directory holding `kernel`, `initrd` and `bundle.json`. The manifest lists
every file with its size and sha256, and carries the sha256 of its own canonical JSON
(`manifest_sha256`), so an edit after the build (a changed command line, memory size,
file list) is caught too. `load()` refuses a bundle whose files or manifest differ, and
a file name that would leave the bundle's directory. To boot a bundle with other kernel
arguments, give them at boot (`compare --append-b`), not by editing the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from appliance.errors import BundleError
from appliance.fsutil import atomic_write, sha256_file
from appliance.machines import Arch, Machine, profile, transport_problem
from appliance.netspec import Forward, Ready, parse_forward, parse_ready
from appliance.probes import probe_table

FORMAT = 1
MANIFEST = "bundle.json"
DIGEST = "manifest_sha256"
FILES = ("kernel", "initrd")
DTB = "board.dtb"


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

    def with_machine(self, machine: Machine) -> Bundle:
        """The same bundle booted as another machine profile (the runner's --machine)."""
        if profile(machine).arch is not self.arch:
            raise BundleError(f"bundle {self.path} is {self.arch.value}; {machine.value} is an "
                              f"{profile(machine).arch.value} machine: build the template for it")
        why = transport_problem(self.manifest, machine)
        if why:
            raise BundleError(f"bundle {self.path} cannot boot as {machine.value}: {why}")
        if machine is Machine.Q35_QBOOT and self.firmware is None:
            raise BundleError(f"bundle {self.path} has no firmware.bin for q35-qboot: build it with MACHINE=q35-qboot")
        base = self.manifest.get("cmdline_base")
        if base is None:
            raise BundleError(f"bundle {self.path} predates machine overrides: rebuild it")
        manifest = {**self.manifest, "machine": machine.value, "cmdline": f"{profile(machine).cmdline} {base}"}
        return replace(self, manifest=manifest)

    RUN_SETTINGS = ("cpu_model", "cpus", "memory_mib")  # what a boot may set without a rebuild

    def with_run(self, **settings: object) -> Bundle:
        """The same bundle booted with other VM settings (vCPU model, count, memory); the
        manifest on disk is not changed."""
        unknown = set(settings) - set(self.RUN_SETTINGS)
        if unknown:
            raise ValueError(f"not run settings: {sorted(unknown)}")
        if self.dtb is not None and settings.get("cpus", self.manifest.get("cpus", 1)) != self.manifest.get("cpus", 1):
            raise BundleError(f"bundle {self.path}'s device tree lists {self.manifest.get('cpus', 1)} vCPU(s): "
                              "set [vm] cpus in the template and rebuild (QEMU updates only the memory in a given tree)")
        return replace(self, manifest={**self.manifest, **settings})

    @property
    def arch(self) -> Arch:
        """The guest architecture (bundles from before aarch64 are x86_64)."""
        try:
            return Arch(self.manifest.get("arch", "x86_64"))
        except ValueError:
            raise BundleError(f"bundle {self.path} is for {self.manifest['arch']!r}, an architecture this runner "
                              f"does not know (it knows: {', '.join(a.value for a in Arch)})") from None

    @property
    def dtb(self) -> Path | None:
        """The device tree the kernel boots with (aarch64 bundles)."""
        return self.path / DTB if DTB in self.manifest["files"] else None

    @property
    def firmware(self) -> Path | None:
        return self.path / "firmware.bin" if "firmware.bin" in self.manifest["files"] else None

    @property
    def disks(self) -> list[dict[str, str]]:
        return list(self.manifest.get("disks", []))

    @property
    def cmdline(self) -> str:
        return str(self.manifest["cmdline"])

    @property
    def probe_table(self) -> dict[tuple[int, int], str]:
        return {(p["port"], p["code"]): p["name"] for p in self.manifest["probes"]}

    @property
    def forwards(self) -> tuple[Forward, ...] | None:
        """The port forwards of a bundle with a network; None: it has no network."""
        network = self.manifest.get("network")
        if network is None:
            return None
        return tuple(parse_forward(spec) for spec in network["forwards"])

    @property
    def ready(self) -> Ready | None:
        """A service bundle's readiness check (None: the payload runs to its end)."""
        service = self.manifest.get("service")
        return parse_ready(service["ready"]) if service else None

    @property
    def send(self) -> bytes:
        return str(self.manifest.get("service", {}).get("send", "")).encode()

    @property
    def digest(self) -> str:
        """One digest for the whole bundle: that of its manifest, which lists every file."""
        return hashlib.sha256((self.path / MANIFEST).read_bytes()).hexdigest()


def file_entry(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": sha256_file(path)}


def manifest(
    folder: Path, *, name: str, cmdline: str, machine: Machine, memory_mib: int, cpus: int,
    user_probes: tuple[tuple[int, str], ...], build: dict[str, Any], disks: list[dict[str, str]] | None = None,
    firmware: bool = False, dtb: bool = False,
) -> dict[str, Any]:
    table = probe_table(user_probes)
    disks = disks or []
    extra = (*(d["file"] for d in disks), *(("firmware.bin",) if firmware else ()), *((DTB,) if dtb else ()))
    return {
        "format": FORMAT,
        "name": name,
        "files": {f: file_entry(folder / f) for f in (*FILES, *extra)},
        "disks": disks,
        "cmdline": cmdline,
        "machine": machine.value,
        "arch": profile(machine).arch.value,
        "memory_mib": memory_mib,
        "cpus": cpus,
        "probes": [{"port": port, "code": code, "name": n} for (port, code), n in sorted(table.items())],
        "build": build,
    }


def own_digest(data: dict[str, Any]) -> str:
    """The sha256 of the manifest's canonical JSON, without its own digest field."""
    body = {k: v for k, v in data.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write(folder: Path, data: dict[str, Any]) -> None:
    sealed = {**data, DIGEST: own_digest(data)}
    atomic_write(folder / MANIFEST, (json.dumps(sealed, indent=2, sort_keys=True) + "\n").encode())


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
        raise BundleError(f"{path} has format {found!r}, this tool reads format {FORMAT}: rebuild the bundle")
    for key in ("files", "cmdline", "machine", "probes"):
        if key not in data:
            raise BundleError(f"{path} lacks '{key}': rebuild the bundle")
    if DIGEST not in data:
        raise BundleError(f"{path} has no digest of its own (built before manifests were sealed): rebuild the bundle")
    if data[DIGEST] != own_digest(data):
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

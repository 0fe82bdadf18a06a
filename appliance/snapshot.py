"""A snapshot: a running guest's whole state saved by QEMU, in a folder with its own
manifest (snapshot.json), which this module alone writes and reads.

The state can only be loaded by a QEMU started as the one that saved it: the same
bundle (its digest), QEMU version, machine, memory size, vCPUs and CPU model, and the
same accelerator. The manifest records them and the state file's sha256 and size;
`load()` refuses a folder without a manifest or whose state file was truncated or
changed, `problem()` names what differs between a snapshot and the boot that would
restore it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import seal
from appliance.errors import ApplianceError
from appliance.fsutil import atomic_write, sha256_file

FORMAT = 2  # 2: the manifest is sealed (appliance/seal.py)
MANIFEST = "snapshot.json"
STATE = "state"
POINTS = ("payload_start", "service_ready")  # or probe:NAME


class SnapshotError(ApplianceError):
    """A snapshot cannot be used: the line says which and why."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    manifest: dict[str, Any]

    @property
    def state(self) -> Path:
        return self.path / STATE

    @property
    def point(self) -> str:
        return str(self.manifest["point"])

    @property
    def bundle_digest(self) -> str:
        return str(self.manifest["bundle"]["digest"])

    @property
    def state_bytes(self) -> int:
        return int(self.manifest["state"]["size"])


# what a restoring QEMU must share with the one that saved the state
MUST_MATCH = ("qemu_version", "machine", "memory_mib", "cpus", "cpu_model", "accel")


def write(folder: Path, *, bundle: dict[str, Any], point: str, vm: dict[str, Any], taken_ms: float) -> Snapshot:
    """Seal FOLDER (whose state file the caller wrote) with its manifest."""
    state = folder / STATE
    manifest = {"format": FORMAT, "point": point, "bundle": bundle, "vm": vm, "taken_after_ms": taken_ms,
                "state": {"file": STATE, "size": state.stat().st_size, "sha256": sha256_file(state)}}
    atomic_write(folder / MANIFEST, (json.dumps(seal.sealed(manifest), indent=1) + "\n").encode())
    return Snapshot(folder, manifest)


def load(folder: Path) -> Snapshot:
    """A snapshot folder, its state checked against its manifest."""
    path = folder / MANIFEST
    if not path.is_file():
        raise SnapshotError(f"{folder} is not a snapshot (no {MANIFEST}): take one with `appliance snapshot BUNDLE`")
    try:
        manifest = json.loads(path.read_bytes().decode())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        expected = manifest["state"]
        vm = manifest["vm"]
        _ = [vm[key] for key in MUST_MATCH], manifest["bundle"]["digest"], manifest["point"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path} is not a snapshot manifest this tool reads ({exc}): take the snapshot again") from None
    broken = seal.problem(manifest)
    if broken:
        raise SnapshotError(f"{path}: {broken}: take the snapshot again")
    state = folder / STATE
    if not state.is_file():
        raise SnapshotError(f"snapshot {folder} has no state file {STATE}: take the snapshot again")
    if state.stat().st_size != expected["size"]:
        raise SnapshotError(f"snapshot {folder}: its state file has {state.stat().st_size} bytes, the manifest says "
                            f"{expected['size']} (truncated?): take the snapshot again")
    if sha256_file(state) != expected["sha256"]:
        raise SnapshotError(f"snapshot {folder}: its state file does not match its sha256 (changed since it was "
                            "taken): take the snapshot again")
    return Snapshot(folder, manifest)


def problem(snapshot: Snapshot, bundle_digest: str, vm: dict[str, Any]) -> str | None:
    """What keeps SNAPSHOT from being restored by a boot of the bundle BUNDLE_DIGEST with VM's settings."""
    if snapshot.bundle_digest != bundle_digest:
        return "it was taken of another bundle (or another build of it): take it of this one"
    saved = snapshot.manifest["vm"]
    for key in MUST_MATCH:
        if saved.get(key) != vm.get(key):
            return f"it was taken with {key} {saved.get(key)!r}, this boot has {vm.get(key)!r}"
    return None

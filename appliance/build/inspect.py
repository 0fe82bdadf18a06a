"""`appliance inspect`: what a bundle holds, file by file, modules first."""

from __future__ import annotations

from typing import Any

from appliance.build import compress, cpio
from appliance.bundle import Bundle


def report(bundle: Bundle) -> dict[str, Any]:
    blob = bundle.initrd.read_bytes()
    raw = compress.decompress(blob)
    members = [e for e in cpio.read(raw) if e.kind in ("file", "symlink")]
    modules = sorted((e for e in members if e.path.endswith(".ko")), key=lambda e: e.path)
    others = sorted((e for e in members if not e.path.endswith(".ko")), key=lambda e: e.path)
    build = bundle.manifest.get("build", {})
    return {
        "bundle": str(bundle.path),
        "name": bundle.manifest.get("name"),
        "machine": bundle.machine.value,
        "kernel_release": build.get("kernel", {}).get("release"),
        "cmdline": bundle.cmdline,
        "initrd": {
            "compressed_bytes": len(blob),
            "uncompressed_bytes": len(raw),
            "compression": "zstd" if blob.startswith(compress.ZSTD_MAGIC) else "none",
            "files": [{"path": e.path, "bytes": len(e.data), "module": e.path.endswith(".ko")}
                      for e in modules + others],
            "modules_bytes": sum(len(e.data) for e in modules),
        },
        "disks": [{**d, "bytes": (bundle.path / d["file"]).stat().st_size} for d in bundle.disks],
        "files": bundle.manifest["files"],
    }


def text(info: dict[str, Any]) -> str:
    initrd = info["initrd"]
    lines = [f"bundle {info['bundle']} ({info['name']}, {info['machine']}, kernel {info['kernel_release']})",
             f"cmdline: {info['cmdline']}", "", f"{'bytes':>10}  initrd file"]
    lines += [f"{f['bytes']:>10}  {f['path']}" for f in initrd["files"]]
    modules = sum(f["module"] for f in initrd["files"])
    lines += ["", f"initrd: {len(initrd['files'])} files ({modules} modules, {initrd['modules_bytes']} bytes), "
              f"{initrd['uncompressed_bytes']} bytes uncompressed, {initrd['compressed_bytes']} bytes "
              f"{initrd['compression']}"]
    lines += [f"disk: {d['file']} ({d['kind']}), {d['bytes']} bytes" for d in info["disks"]]
    return "\n".join(lines)

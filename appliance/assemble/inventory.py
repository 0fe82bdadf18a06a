"""`appliance inspect`: what a bundle holds, file by file, with where each came from.

A bundle's manifest names each file's source (build.contents, every build now): the
init, a program, the template's files, a kernel module, a host program's closure or a
Debian package and its version; sizes are summed per source. An older bundle without
it is listed from its initrd alone.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from appliance.assemble import compress, cpio, devicetree
from appliance.bundle import Bundle


def report(bundle: Bundle) -> dict[str, Any]:
    blob = bundle.initrd.read_bytes()
    raw = cpio.expand_initrd(blob)
    members = [e for e in cpio.read(raw) if e.kind in ("file", "symlink")]
    modules = sorted((e for e in members if e.path.endswith(".ko")), key=lambda e: e.path)
    others = sorted((e for e in members if not e.path.endswith(".ko")), key=lambda e: e.path)
    return {
        "bundle": str(bundle.path),
        "name": bundle.name,
        "machine": bundle.machine.value,
        "kernel_release": bundle.kernel_release,
        "cmdline": bundle.cmdline,
        "initrd": {
            "compressed_bytes": len(blob),
            "uncompressed_bytes": len(raw),
            "compression": ("zstd" if blob.startswith(compress.ZSTD_MAGIC) else
                            "gzip" if blob.startswith(compress.GZIP_MAGIC) else "none"),
            "files": [{"path": e.path, "bytes": len(e.data), "module": e.path.endswith(".ko")}
                      for e in modules + others],
            "modules_bytes": sum(len(e.data) for e in modules),
        },
        "disks": [{**d, "bytes": (bundle.path / d["file"]).stat().st_size} for d in bundle.disks],
        "files": bundle.files,
        "arch": bundle.arch.value,
        **_device_tree(bundle),
        **_contents(bundle),
    }


def _device_tree(bundle: Bundle) -> dict[str, Any]:
    """The board.dtb as the kernel gets it, read back: nodes, compatible strings, and what
    the build removed from QEMU's tree."""
    if bundle.dtb is None:
        return {}
    tree = devicetree.parse(bundle.dtb.read_bytes())
    facts = bundle.device_tree or {}
    return {"device_tree": {**devicetree.summary(tree), "bytes": bundle.dtb.stat().st_size,
                            "nodes_qemu": facts.get("nodes_qemu"), "removed": facts.get("removed", [])}}


def _contents(bundle: Bundle) -> dict[str, Any]:
    items = bundle.contents
    if not items:
        return {}
    sums: dict[str, dict[str, int]] = defaultdict(lambda: {"files": 0, "bytes": 0})
    for item in items:
        sums[_group(item["source"])]["files"] += 1
        sums[_group(item["source"])]["bytes"] += item["bytes"]
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1]["bytes"], kv[0]))
    return {"contents": items, "sources": [{"source": k, **v} for k, v in ranked]}


def _group(source: str) -> str:
    """Sum kernel modules together; every other source is its own group."""
    return "kernel modules" if source.startswith("kernel module ") else source


def text(info: dict[str, Any]) -> str:
    initrd = info["initrd"]
    arch = "" if info.get("arch", "x86_64") == "x86_64" else f"{info['arch']} "
    lines = [f"bundle {info['bundle']} ({info['name']}, {arch}{info['machine']}, kernel {info['kernel_release']})",
             f"cmdline: {info['cmdline']}", ""]
    if "contents" in info:
        lines += [f"{'bytes':>10}  {'in':<6}  {'path':<48}  source"]
        lines += [f"{c['bytes']:>10}  {c['in']:<6}  {c['path'] + (' (link)' if c['kind'] == 'symlink' else ''):<48}  "
                  f"{c['source']}" for c in info["contents"]]
        lines += ["", f"{'bytes':>10}  {'files':>6}  source"]
        lines += [f"{s['bytes']:>10}  {s['files']:>6}  {s['source']}" for s in info["sources"]]
    else:
        lines += [f"{'bytes':>10}  initrd file"]
        lines += [f"{f['bytes']:>10}  {f['path']}" for f in initrd["files"]]
    modules = sum(f["module"] for f in initrd["files"])
    lines += ["", f"initrd: {len(initrd['files'])} files ({modules} modules, {initrd['modules_bytes']} bytes), "
              f"{initrd['uncompressed_bytes']} bytes uncompressed, {initrd['compressed_bytes']} bytes "
              f"{initrd['compression']}"]
    lines += [f"disk: {d['file']} ({d['kind']}), {d['bytes']} bytes" for d in info["disks"]]
    tree = info.get("device_tree")
    if tree:
        lines += ["", f"device tree: board.dtb, {tree['bytes']} bytes, {tree['nodes']} nodes "
                      f"(QEMU's had {tree['nodes_qemu']}); print it with `appliance dts BUNDLE`"]
        lines += [f"  {count:>3}  {name}" for name, count in tree["compatible"].items()]
        if tree["removed"]:
            lines.append(f"  removed from QEMU's: {', '.join(devicetree.grouped(tree['removed']))}")
    return "\n".join(lines)

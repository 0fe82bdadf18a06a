"""Check: our tslog reader against FreeBSD's own boot-profiling scripts.

Runs the reference pipeline (`tslog.sh | perl stackcollapse-tslog.pl`, from a checkout of
github.com/cperciva/freebsd-boot-profiling given as REFERENCE; nothing of it is copied
here) on two dumps of the same boot, one written the FreeBSD way (EXIT names the ENTER's
argument too) and one the NetBSD way (EXIT names the function only), and compares every
kernel stack's self time with `appliance tslog`'s collapsed output. With a TSC of 1 MHz a
cycle is a microsecond, so the reference's cycle counts and our microseconds compare
directly. The scripts want FreeBSD's sysctl, uname and mktemp: small stand-ins on PATH
serve the dump instead.

    .venv/bin/python benchmarks/tslog_reference.py /path/to/freebsd-boot-profiling
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import proc  # noqa: E402
from appliance.analysis import spans, tslog  # noqa: E402

# One boot: devices attached under mainbus, a nested attach, a wait-free second thread
# (which the reference leaves out of the kernel stacks, as we do), start_init last.
BOOT = [
    ("0x0", 400, "ENTER", "hammer_time", ""),  # before curthread exists: FreeBSD logs td 0x0
    ("0x0", 900, "EXIT", "hammer_time", ""),
    ("0x1", 1000, "ENTER", "main", ""),
    ("0x1", 1200, "ENTER", "vm_mem_init", ""),
    ("0x1", 2900, "EXIT", "vm_mem_init", ""),
    ("0x1", 3000, "ENTER", "config_attach_internal", "mainbus"),
    ("0x1", 3100, "ENTER", "config_attach_internal", "cpu"),
    ("0x1", 3700, "EXIT", "config_attach_internal", "cpu"),
    ("0x1", 3750, "ENTER", "config_attach_internal", "ioapic"),
    ("0x1", 3800, "ENTER", "config_attach_internal", "ioapic_pin"),
    ("0x1", 4100, "EXIT", "config_attach_internal", "ioapic_pin"),
    ("0x1", 5200, "EXIT", "config_attach_internal", "ioapic"),
    ("0x1", 6400, "EXIT", "config_attach_internal", "mainbus"),
    ("0x2", 6500, "THREAD", "pagedaemon", ""),
    ("0x2", 6600, "ENTER", "uvm_pageout", ""),
    ("0x1", 7000, "ENTER", "rootconf", ""),
    ("0x1", 8800, "EXIT", "rootconf", ""),
    ("0x1", 9000, "ENTER", "start_init", ""),
    ("0x1", 9900, "EXIT", "start_init", ""),
]


def dump(netbsd: bool) -> str:
    lines = []
    for td, tsc, kind, name, arg in BOOT:
        words = [td, str(tsc), kind, name]
        if arg and not (netbsd and kind == "EXIT"):
            words.append(arg)
        lines.append(" ".join(words))
    return "\n".join(lines) + "\n"


def stand_ins(folder: Path, dump_file: Path, system: str) -> None:
    scripts = {
        "sysctl": f'case "$*" in *debug.tslog_user*) exit 0;; *debug.tslog*) cat "{dump_file}";; esac\n',
        "uname": f'case "$1" in -s) echo {system};; -p) echo amd64;; *) echo {system};; esac\n',
        "mktemp": 'exec /usr/bin/mktemp -d\n',
        "lam": 'sed "s/^/$2/"\n',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)


def reference(checkout: Path, text: str, system: str) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir, dump_file = Path(tmp) / "bin", Path(tmp) / "ts.log"
        bin_dir.mkdir()
        dump_file.write_text(text)
        stand_ins(bin_dir, dump_file, system)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        stacks = Path(tmp) / "stacks"
        stacks.write_text(proc.run(["sh", "tslog.sh"], cwd=checkout, env=env, timeout=120).stdout)
        collapsed = proc.run(["perl", "stackcollapse-tslog.pl", str(stacks)], cwd=checkout, timeout=120).stdout
    out = {}
    for line in collapsed.splitlines():
        path, value = line.rsplit(" ", 1)
        # the reference draws the time before the first record as BIOS, and thread 0x0's
        # frames at the root; we put both under the boot thread, as the same CPU ran them
        if path == "BIOS":
            path = "kernel;" + tslog.BEFORE
        elif path != "kernel" and not path.startswith("kernel;"):
            path = "kernel;" + path
        out[path] = int(float(value))
    return {k: v for k, v in out.items() if v}


def ours(text: str) -> dict[str, int]:
    profile = tslog.timeline(text, 1e6)  # 1 cycle = 1 us
    kernel = [s for s in profile.spans if s.track == "kernel"]
    return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in spans.collapsed(kernel)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a checkout of cperciva/freebsd-boot-profiling")
    args = parser.parse_args()
    worst = 0
    for system, netbsd in (("FreeBSD", False), ("NetBSD", True)):
        text = dump(netbsd)
        theirs, mine = reference(args.reference, text, system), ours(text)
        print(f"{system}-style dump: {len(theirs)} stacks in the reference, {len(mine)} in ours")
        for path in sorted(set(theirs) | set(mine)):
            a, b = theirs.get(path), mine.get(path)
            gap = abs((a or 0) - (b or 0))
            worst = max(worst, gap)
            print(f"  {'ok ' if gap <= 1 else 'OFF'} {path}: reference {a} us, ours {b} us")
    print(f"largest difference: {worst} us")
    return 0 if worst <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())

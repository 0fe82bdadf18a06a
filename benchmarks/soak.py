"""Soak: many boots of the default appliance through the bench loop, with faults injected.

About one boot in ten gets a random fault while it runs:
- kill:    QEMU is sent SIGKILL part-way through the boot;
- console: the boot's console log is deleted while QEMU writes it;
- full:    the boot's temporary folder sits on a small tmpfs that is filled first;
- pause:   QEMU is stopped with SIGSTOP for a few seconds, then continued.
The first three must be failed boots with their reason, a paused one a counted boot
flagged as disturbed, every other boot counted; afterwards no QEMU of ours may be left,
no temporary folder, and the results file must be complete. Needs root (tmpfs mount).

    .venv/bin/python benchmarks/soak.py [-n 200] [--fault-rate 0.1] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, results  # noqa: E402
from appliance.boot import accel, hostfacts  # noqa: E402
from appliance.runs.bench import Plan, Session  # noqa: E402

FAULTS = ("kill", "console", "full", "pause")


def our_qemus() -> list[int]:
    """QEMU processes that are children of this process (setpriv execs QEMU in place)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and "qemu-system" in stat:
                found.append(int(entry))
    return found


def wait_for(predicate, limit: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return None


def inject(fault: str, tmp: Path, rng: random.Random) -> None:
    """Run in a thread during one boot: wait until QEMU runs, then do FAULT to it."""
    pids = wait_for(our_qemus)
    if not pids:
        return
    time.sleep(rng.uniform(0.3, 2.0))  # somewhere in firmware, kernel or init
    if fault == "kill":
        os.kill(pids[0], signal.SIGKILL)
    elif fault == "console":
        for console in tmp.glob("appliance-boot-*/console.log"):
            console.unlink(missing_ok=True)
    elif fault == "pause":
        os.kill(pids[0], signal.SIGSTOP)
        time.sleep(rng.uniform(2.0, 4.0))
        os.kill(pids[0], signal.SIGCONT)


def fill(path: Path) -> None:
    """Write PATH until its filesystem is full."""
    with open(path, "wb") as out:
        try:
            while True:
                out.write(bytes(1 << 20))
                out.flush()
        except OSError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default=",".join(FAULTS), help="the kinds of fault to choose from")
    parser.add_argument("-o", "--output", default=str(Path(tempfile.gettempdir()) / "soak.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = [k for k in args.faults.split(",") if k in FAULTS]
    build = Path(tempfile.mkdtemp(prefix="appliance-soak-build-"))
    scons = str(Path(sys.executable).with_name("scons"))
    subprocess.run([scons, "-Q", "appliance", f"BUILD_DIR={build}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="appliance-soak-tmp-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "soak", str(tmp)], check=True)
    tempfile.tempdir = str(tmp)  # every boot's folder lands on the small tmpfs
    target = bundle.load(build / "benchmark")
    session = Session(target, accel.choose("tcg"), Plan(n=args.n, warmup=0, timeout=120, keep_going=True))
    planned: dict[int, str] = {}
    started = time.monotonic()
    try:
        for index in range(args.n):
            fault = rng.choice(kinds) if rng.random() < args.fault_rate else None
            filler = tmp / "filler"
            if fault == "full":  # leave no room for the boot's console and trace
                fill(filler)
            thread = threading.Thread(target=inject, args=(fault, tmp, rng), daemon=True) if fault in (
                "kill", "console", "pause") else None
            if thread:
                thread.start()
            session.boot(warmup=False)
            if thread:
                thread.join(timeout=30)
            filler.unlink(missing_ok=True)
            if fault:
                planned[index] = fault
            print(f"\rboot {index + 1}/{args.n}", end="", file=sys.stderr, flush=True)
    finally:
        tempfile.tempdir = None
        doc = session.document(len(session.runs) == args.n, hostfacts.collect(target.arch))
        results.write(Path(args.output), doc)
        leftovers = [p.name for p in tmp.iterdir()]
        subprocess.run(["umount", str(tmp)], check=False)
        os.rmdir(tmp)
        subprocess.run(["rm", "-rf", str(build)], check=False)
    print(file=sys.stderr)
    report(results.read(Path(args.output)), planned, leftovers, time.monotonic() - started)


def report(doc: dict, planned: dict[int, str], leftovers: list[str], seconds: float) -> None:  # type: ignore[type-arg]
    runs = doc["runs"]
    print(f"## Soak: {len(runs)} boots, {len(planned)} with a fault ({seconds / 60:.1f} min)\n")
    print("| fault | boots | reported failed | counted | flagged disturbed | reasons |")
    print("|---|---|---|---|---|---|")
    for fault in (*FAULTS, None):
        chosen = [r for r in runs if planned.get(r["index"]) == fault]
        failed = [r for r in chosen if not r["ok"]]
        disturbed = [r for r in chosen if r["ok"] and (r.get("host_load") or {}).get("disturbed")]
        reasons = Counter(re.sub(r"/\S+", "...", str(r["error"]).splitlines()[0].split(";")[0]) for r in failed)
        print(f"| {fault or 'none'} | {len(chosen)} | {len(failed)} | {len(chosen) - len(failed)} | {len(disturbed)} | "
              f"{'; '.join(f'{k} ({v})' for k, v in reasons.items()) or '-'} |")
    print(f"\n- results file complete: {doc['complete']}, {len(runs)} run records, "
          f"{doc['failed_runs']} failed; QEMU processes left: {len(our_qemus())}; "
          f"temporary folders left: {len(leftovers)}")


if __name__ == "__main__":
    main()

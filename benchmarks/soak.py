"""Soak: many boots of the default appliance through the bench loop, with faults injected.

About one boot in ten gets a random fault while it runs:
- kill:    QEMU is sent SIGKILL part-way through the boot;
- console: the boot's console log is deleted while QEMU writes it;
- full:    the boot's temporary folder sits on a small tmpfs that is filled first;
- filling: that tmpfs is filled while QEMU writes its console and trace (they are cut short);
- pause:   QEMU is stopped with SIGSTOP for a few seconds, then continued.
The first four must be failed boots with their reason, a paused one a counted boot
flagged as disturbed, every other boot counted; afterwards no QEMU of ours may be left,
no temporary folder, and the results file must be complete. Needs root (tmpfs mount).

With --restore the boots are restores of a snapshot of the appliance (taken first with
`appliance snapshot`), under the same faults.

Then --builds rounds of builds that share a build folder and the cache: two builds of
one template into one BUILD_DIR at once (the second must wait, then succeed), and
`appliance cache --clean` while a build runs (refused, the build unharmed).

With --fleet N: a bench of N boots on a fleet (an `appliance scheduler` and two
`appliance worker`s on 127.0.0.1, mutual TLS) while a worker is killed (SIGKILL) and
started again, a bundle file in a worker's cache is damaged, and a worker's QEMU is
stopped for seconds: the run set must be complete, every boot counted or failed with
its reason, the lost worker listed, no QEMU left.

    .venv/bin/python benchmarks/soak.py [-n 200] [--fault-rate 0.1] [--seed 1] [--builds 5] [--restore]
                                        [--fleet 40]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import bundle, proc, results  # noqa: E402
from appliance.boot import accel, hostfacts  # noqa: E402
from appliance.runs.bench import Plan, Session  # noqa: E402
from benchmarks.common import SCONS  # noqa: E402

FAULTS = ("kill", "console", "full", "filling", "pause")


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


def inject(fault: str, tmp: Path, rng: random.Random, latest: float = 2.0) -> None:
    """Run in a thread during one boot: wait until QEMU runs, then do FAULT to it, within
    LATEST seconds (a boot: in firmware, kernel or init; a restore is over sooner)."""
    pids = wait_for(our_qemus)
    if not pids:
        return
    time.sleep(rng.uniform(0.15 * latest, latest))
    try:
        _do(fault, pids[0], tmp, rng)
    except ProcessLookupError:  # the boot ended first (a restore takes well under a second)
        pass


def _do(fault: str, pid: int, tmp: Path, rng: random.Random) -> None:
    if fault == "kill":
        os.kill(pid, signal.SIGKILL)
    elif fault == "console":
        for console in tmp.glob("appliance-boot-*/console.log"):
            console.unlink(missing_ok=True)
    elif fault == "filling":
        fill(tmp / "filler")
    elif fault == "pause":
        os.kill(pid, signal.SIGSTOP)
        time.sleep(rng.uniform(2.0, 4.0))
        os.kill(pid, signal.SIGCONT)


def fill(path: Path) -> None:
    """Write PATH until its filesystem is full (it may be full already)."""
    try:
        with open(path, "wb") as out:
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
    parser.add_argument("--builds", type=int, default=5, help="rounds of concurrent builds and cache cleaning")
    parser.add_argument("-o", "--output", default=str(Path(tempfile.gettempdir()) / "soak.json"))
    parser.add_argument("--restore", action="store_true", help="restore a snapshot at each boot instead of booting")
    parser.add_argument("--fleet", type=int, default=0, help="then this many boots on a fleet under faults")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = [k for k in args.faults.split(",") if k in FAULTS]
    build = Path(tempfile.mkdtemp(prefix="appliance-soak-build-"))
    scons = SCONS
    proc.run([scons, "-Q", "appliance", f"BUILD_DIR={build}"], cwd=ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="appliance-soak-tmp-"))
    proc.run(["mount", "-t", "tmpfs", "-o", "size=64m", "soak", str(tmp)])
    tempfile.tempdir = str(tmp)  # every boot's folder lands on the small tmpfs
    target = bundle.load(build / "benchmark")
    restore = take_snapshot(target, build / "snapshot") if args.restore else None
    session = Session(target, accel.choose("tcg"), Plan(n=args.n, warmup=0, timeout=120, keep_going=True,
                                                        restore=restore))
    planned: dict[int, str] = {}
    started = time.monotonic()
    try:
        for index in range(args.n):
            fault = rng.choice(kinds) if rng.random() < args.fault_rate else None
            filler = tmp / "filler"
            if fault == "full":  # leave no room for the boot's console and trace
                fill(filler)
            latest = 0.1 if args.restore else 2.0  # a restore runs about 0.13 s
            thread = threading.Thread(target=inject, args=(fault, tmp, rng, latest), daemon=True) if fault in (
                "kill", "console", "filling", "pause") else None
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
        proc.run(["umount", str(tmp)], check=False)
        os.rmdir(tmp)
        shutil.rmtree(build, ignore_errors=True)
    print(file=sys.stderr)
    report(results.read(Path(args.output)), planned, leftovers, time.monotonic() - started, restored=args.restore)
    builds(args.builds, scons)
    if args.fleet:
        fleet(args.fleet, scons, rng)


def take_snapshot(target: bundle.Bundle, folder: Path) -> Any:
    """A snapshot of TARGET at its payload's start (`appliance snapshot`), loaded."""
    from appliance import snapshot

    proc.run([sys.executable, "-m", "appliance", "snapshot", str(target.path), "--accel", "tcg", "-o", str(folder)],
             cwd=ROOT)
    return snapshot.load(folder)


# in this order: a worker's cache damaged, then the other worker killed, so that its block
# runs again on the damaged one, which must find the damage before it boots
FLEET_FAULTS = ("pause-qemu", "damage-cache", "kill-worker")


def fleet(n: int, scons: str, rng: random.Random) -> None:
    """N boots of the benchmark appliance on a two-worker TLS fleet, each fleet fault
    once, at random moments of the run."""
    from tests import dask_cluster

    build = Path(tempfile.mkdtemp(prefix="appliance-soak-fleet-"))
    proc.run([scons, "-Q", "appliance", f"BUILD_DIR={build}"], cwd=ROOT)
    out = build / "fleet.json"
    stderr_file = build / "bench.stderr"
    done: dict[str, str] = {}
    started = time.monotonic()
    with dask_cluster.cluster(["w1", "w2"]) as running:
        with stderr_file.open("wb") as err:
            bench = proc.spawn([sys.executable, "-m", "appliance", "bench", str(build / "benchmark"), "-n", str(n),
                                "--warmup", "0", "--accel", "tcg", "--keep-going", "-o", str(out), "--no-record",
                                *running.client_args()], cwd=ROOT, stdout=proc.DEVNULL, stderr=err)
        damaged: list[str] = []
        for fault in FLEET_FAULTS:
            time.sleep(rng.uniform(4, 10))
            if bench.poll() is not None:
                break
            done[fault] = fleet_fault(fault, running, rng, damaged)
        if bench.wait(timeout=3600) is None:
            bench.end()
        stderr = stderr_file.read_text(errors="replace")
        left = [pid for label in running.workers for pid in running.qemus(label)]
        discarded = sum(running.log(label).count("changed since it arrived") for label in running.workers)
    doc = results.read(out)
    runs = doc["runs"]
    failed = [r for r in runs if not r["ok"]]
    reasons = Counter(re.sub(r"/\S+", "...", str(r["error"]).splitlines()[0].split(";")[0]) for r in failed)
    print(f"\n## Fleet soak: {n} boots on two TLS workers ({(time.monotonic() - started) / 60:.1f} min)\n")
    for fault, what in done.items():
        print(f"- {fault}: {what}")
    print(f"- bench exit status {bench.returncode}; results complete: {doc['complete']}, {len(runs)} run records, "
          f"{len(failed)} failed ({'; '.join(f'{k} ({v})' for k, v in reasons.items()) or '-'})")
    print(f"- lost workers listed: {(doc.get('fleet') or {}).get('lost_workers', [])}")
    print(f"- workers that ran boots: {sorted({r['worker']['name'] for r in runs if 'worker' in r})}")
    print(f"- QEMU processes left on the workers: {len(left)}")
    print(f"- damaged cache pieces the workers found and threw out before booting: {discarded}")
    print(f"- the bench's last line: {(stderr.strip().splitlines() or [''])[-1][:200]}")
    shutil.rmtree(build, ignore_errors=True)


def fleet_fault(fault: str, running: Any, rng: random.Random, damaged: list[str]) -> str:
    """Do FAULT to the running fleet; say what was done. DAMAGED: the workers whose cache
    was damaged (a kill goes to another one)."""
    label = rng.choice(sorted(running.workers))
    if fault == "kill-worker":
        label = next((w for w in sorted(running.workers) if w not in damaged), label)
        running.workers[label].kill()
        running.workers[label].wait()
        running.start_worker(label)
        return f"worker {label} killed (SIGKILL) and started again"
    if fault == "damage-cache":
        label = next((w for w in sorted(running.workers) if any(running.cache(w).rglob("initrd"))), label)
        pieces = [p for p in running.cache(label).rglob("initrd") if p.is_file()]
        if not pieces:
            return f"worker {label} had no cached initrd yet: nothing damaged"
        data = bytearray(pieces[0].read_bytes())
        data[len(data) // 2] ^= 0xFF
        pieces[0].write_bytes(bytes(data))
        damaged.append(label)
        return f"a byte of {pieces[0].name} in worker {label}'s cache flipped"
    pids = running.qemus(label)
    if not pids:
        return f"worker {label} ran no QEMU at that moment: nothing paused"
    os.kill(pids[0], signal.SIGSTOP)
    time.sleep(rng.uniform(2.0, 4.0))
    os.kill(pids[0], signal.SIGCONT)
    return f"a QEMU of worker {label} stopped (SIGSTOP) for seconds"


def builds(rounds: int, scons: str) -> None:
    """Builds sharing a build folder and the cache: each round starts two builds of one
    template into a fresh BUILD_DIR at once, and tries to clean the cache meanwhile."""
    from appliance.assemble import kernelfetch

    outcome: Counter[str] = Counter()
    # a private cache (the real one's kernels hard-linked in): the cleaning must not empty yours
    cache = Path(tempfile.mkdtemp(prefix="appliance-soak-cache-"))
    proc.run(["cp", "-al", str(kernelfetch.cache_dir() / "kernels"), str(cache / "kernels")])
    env = {**os.environ, "APPLIANCE_CACHE": str(cache)}
    for _ in range(rounds):
        build = Path(tempfile.mkdtemp(prefix="appliance-soak-builds-"))
        argv = [scons, "-Q", "appliance", "TEMPLATE=disk", f"BUILD_DIR={build}"]
        logs = [build / f"scons-{k}.stderr" for k in (1, 2)]
        children = []
        for log in logs:
            with log.open("wb") as err:
                children.append(proc.spawn(argv, cwd=ROOT, stdout=proc.DEVNULL, stderr=err, env=env))
        time.sleep(0.3)
        clean = proc.run([sys.executable, "-m", "appliance", "cache", "--clean"], cwd=ROOT, timeout=300, env=env,
                         check=False)
        done = [(child.wait(timeout=900), log.read_text(errors="replace")) for child, log in zip(children, logs, strict=True)]
        outcome["builds that succeeded"] += sum(code == 0 for code, _ in done)
        outcome["builds that failed"] += sum(code != 0 for code, _ in done)
        outcome["builds that waited for the other"] += sum("waiting: another build is writing" in err for _, err in done)
        if clean.returncode == 0:
            outcome["cache cleans that ran (no build held the cache yet or any more)"] += 1
        elif "a build is using the cache" in clean.stderr:
            outcome["cache cleans refused while a build ran"] += 1
        else:
            outcome[f"cache cleans that failed otherwise: {clean.stderr.strip()[:80]}"] += 1
        intact = not bundle.problems(bundle.load(build / "disk", verify=False))
        outcome["bundles intact afterwards"] += intact
        shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"\n## Concurrent builds and cache cleaning: {rounds} rounds\n")
    for what, count in outcome.items():
        print(f"- {what}: {count}")


def report(doc: dict, planned: dict[int, str], leftovers: list[str], seconds: float,  # type: ignore[type-arg]
           restored: bool = False) -> None:
    runs = doc["runs"]
    what = "snapshot restores" if restored else "boots"
    print(f"## Soak: {len(runs)} {what}, {len(planned)} with a fault ({seconds / 60:.1f} min)\n")
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

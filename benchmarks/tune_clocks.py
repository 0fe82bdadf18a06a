"""tune on the instruction clock against tune on the wall clock (issue 38): the same
knobs, ranked by `tune` at --clock virtual with 2 boots a side and at --clock wall with
10, side by side with each knob's change in instructions and in wall time.

    .venv/bin/python benchmarks/tune_clocks.py [--template benchmark-minimal] [--knobs K1,K2,...]
        [--insn-n 2] [--wall-n 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import proc  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402


def tune(bundle: Path, clock: str, n: int, knobs: str, out: Path) -> list[dict]:
    argv = [sys.executable, "-m", "appliance", "tune", str(bundle), "--clock", clock, "-n", str(n), "--warmup", "1",
            "--accel", "tcg", "--no-record", "--no-combine", "-o", str(out)]
    if knobs:
        argv += ["--knobs", knobs]
    proc.run(argv, cwd=ROOT, timeout=7200, capture=False)
    return json.loads(out.read_text())["tune"]["rows"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--template", default="benchmark-minimal")
    parser.add_argument("--knobs", default="")
    parser.add_argument("--insn-n", type=int, default=2)
    parser.add_argument("--wall-n", type=int, default=10)
    args = parser.parse_args()
    target = build_bundle(args.template)
    with tempfile.TemporaryDirectory(prefix="tune-clocks-") as tmp:
        counted = tune(target.path, "virtual", args.insn_n, args.knobs, Path(tmp) / "insn.json")
        timed = tune(target.path, "wall", args.wall_n, args.knobs, Path(tmp) / "wall.json")
    rank_insn = [r["knob"] for r in counted]
    rank_wall = [r["knob"] for r in timed]
    wall_of = {r["knob"]: r for r in timed}
    print(f"\n{args.template}: tune --clock virtual -n {args.insn_n} against tune --clock wall -n {args.wall_n}\n")
    print("| knob | rank (insns) | to_init change (insns) | real | rank (wall) | to_init change (wall) | real |")
    print("|---|---|---|---|---|---|---|")
    for row in counted:
        wall = wall_of.get(row["knob"], {})
        insn = row["to_init"]
        wall_t = wall.get("to_init")
        print(f"| {row['knob']} | {rank_insn.index(row['knob']) + 1} | "
              f"{(insn['ratio'] - 1) * 100:+.3f}% | {'yes' if row.get('real') else 'no'} | "
              f"{rank_wall.index(row['knob']) + 1 if row['knob'] in rank_wall else '-'} | "
              f"{(wall_t['ratio'] - 1) * 100:+.1f}% | {'yes' if wall.get('real') else 'no'} |"
              if insn and wall_t else f"| {row['knob']} | broke the boot | | | | | |")


if __name__ == "__main__":
    main()

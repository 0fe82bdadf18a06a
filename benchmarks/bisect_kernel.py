"""A real bisect of minimal kernels: a git history of Debian's linux-source 6.1 (the
locked one) of four commits, the third adding a late initcall that spins for 300 ms;
`appliance bisect --git` over it must name that commit. Prints the bisect's output
with the builds and boots it took.

    .venv/bin/python benchmarks/bisect_kernel.py [--repo /tmp/linux-git] [-n 4 --max-n 12] [--clock wall]
    .venv/bin/python benchmarks/bisect_kernel.py --clock virtual -n 2 --max-n 2 --phase to_init

On the instruction clock the kernel phase of a minimal-kernel bundle starts at an entry
inferred from the trace, which has no count: bisect to_init (exec to init_start) there.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance import proc  # noqa: E402
from appliance.assemble import minikernel  # noqa: E402
from benchmarks.common import build_bundle  # noqa: E402

SLOW = """
#include <linux/delay.h>
/* benchmarks/bisect_kernel.py: the regression a bisect must find */
static int __init appliance_slow_initcall(void)
{
	mdelay(300);
	return 0;
}
late_initcall(appliance_slow_initcall);
"""


def git(repo: Path, *args: str) -> str:
    return proc.run(["git", "-C", str(repo), *args]).stdout.strip()


def make_history(repo: Path) -> list[str]:
    """Four commits: as shipped, a comment, the slow initcall, another comment."""
    if not (repo / ".git").is_dir():
        shutil.copytree(minikernel.locked_source(), repo, symlinks=True)
        git(repo, "init", "-q")
        git(repo, "config", "user.email", "bench@example.invalid")
        git(repo, "config", "user.name", "bench")
        git(repo, "add", "-A", "-f")  # Debian's linux-source ignores its own top level in .gitignore
        git(repo, "commit", "-q", "-m", "linux-source 6.1 as Debian ships it")
        for message, change in (("a comment", ("README", "\nA harmless change.\n")),
                                ("a slow late initcall", ("init/main.c", SLOW)),
                                ("another comment", ("README", "\nAnother harmless change.\n"))):
            path = repo / change[0]
            path.write_text(path.read_text() + change[1])
            git(repo, "commit", "-q", "-am", message)
    return git(repo, "rev-list", "--reverse", "HEAD").split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default="/tmp/linux-git-bisect")
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--max-n", type=int, default=12)
    parser.add_argument("--clock", default="wall", choices=["wall", "instructions", "virtual"])
    parser.add_argument("--phase", default="kernel")
    args = parser.parse_args()
    commits = make_history(Path(args.repo))
    target = build_bundle("benchmark-minimal")
    print(f"history: {len(commits)} commits, the slow one {commits[2][:12]}", flush=True)
    started = time.monotonic()
    proc.run([sys.executable, "-m", "appliance", "bisect", str(target.path), "--git", args.repo,
              "--good", commits[0], "--bad", commits[-1], "--phase", args.phase, "-n", str(args.n),
              "--max-n", str(args.max_n), "--warmup", "1", "--accel", "tcg", "--no-record", "--clock", args.clock],
             cwd=ROOT, check=False, capture=False)
    print(f"wall time: {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()

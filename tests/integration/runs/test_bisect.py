"""bisect on real boots: a generated history of 8 commits, the payload's work stepping
up at one of them; --build-cmd builds each commit's bundle (minimal kernel), and the
bisect finds that commit in at most ceil(log2(N)) + 1 steps, every step recorded."""

import json
import math
import subprocess
import sys

import pytest

from appliance.store import db, query
from tests.conftest import DATA, ROOT

pytestmark = pytest.mark.boot


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_bisect_finds_the_commit_where_the_payload_stepped(minimal_kernel_bundle, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    commits = []
    for i in range(9):  # commit 0 is good; the work steps up at commit 5
        (repo / "work").write_text("60\n" if i >= 5 else "1\n")
        (repo / "note").write_text(f"change {i}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", f"change {i}")
        commits.append(git(repo, "rev-parse", "HEAD")[:12])
    store = f"sqlite:///{tmp_path / 'results.db'}"
    build = tmp_path / "build"
    command = f"{sys.executable} {DATA / 'bisect_build.py'} {repo} {build} {{commit}} {{out}}"
    done = subprocess.run([sys.executable, "-m", "appliance", "bisect", "--repo", str(repo), "--good", commits[0],
                           "--bad", commits[-1], "--build-cmd", command, "--phase", "payload", "-n", "3",
                           "--max-n", "9", "--warmup", "0", "--accel", "tcg", "--db", store, "--json",
                           "-o", str(tmp_path / "steps")], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    found = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(found["steps"], indent=1)
    assert found["first_bad"] == commits[5], found
    assert len(found["steps"]) <= math.ceil(math.log2(len(commits) - 1)) + 1
    engine, url = db.open_store(store)
    recorded = query.run_set_list(engine, url, {"kind": "bisect"})
    assert len(recorded) == 3 * len(found["steps"])  # good, mid and bad of every step
    assert sorted((tmp_path / "steps").iterdir())[0].name == "step-1.json"

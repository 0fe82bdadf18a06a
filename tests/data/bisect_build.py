"""A --build-cmd for the bisect test: the bundle of COMMIT of a generated history, whose
file `work` holds how many times the payload does its file work (the bad commits: many).

    python bisect_build.py REPO BUILD_DIR COMMIT OUT
"""

import shutil
import subprocess
import sys
from pathlib import Path

repo, build, commit, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
work = subprocess.run(["git", "-C", repo, "show", f"{commit}:work"], capture_output=True, text=True, check=True).stdout
template = build / "templates" / f"bisect-{commit}.toml"
template.parent.mkdir(parents=True, exist_ok=True)
template.write_text('[appliance]\nkernel = "minimal"\n[init]\nmounts = ["proc", "devtmpfs", "tmpfs"]\n'
                    f'payload = ["/bin/bench", "{work.strip()}"]\n[programs]\nbuild = ["bench"]\n'
                    '[vm]\ncmdline = "quiet"\n[probes]\nwork_done = 0x20\n')
root = Path(__file__).resolve().parents[2]
scons = str(Path(sys.executable).with_name("scons"))
subprocess.run([scons, "-Q", "appliance", f"TEMPLATE={template}", f"BUILD_DIR={build}"], cwd=root, check=True,
               stdout=subprocess.DEVNULL)
shutil.copytree(build / f"bisect-{commit}", out)

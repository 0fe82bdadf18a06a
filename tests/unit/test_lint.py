"""Linters as tests: ruff and strict mypy over the package (skipped if not installed)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("argv", [["ruff", "check", "appliance", "tests", "benchmarks"], ["mypy"]])
def test_linter_is_clean(argv):
    tool = BIN / argv[0] if (BIN / argv[0]).exists() else shutil.which(argv[0])
    if tool is None:
        pytest.skip(f"{argv[0]} not installed")
    done = subprocess.run([str(tool), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

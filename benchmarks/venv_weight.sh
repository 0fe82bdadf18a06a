#!/bin/bash
# Benchmark: the virtualenv ./setup makes, at two revisions of this repository: the pip
# install's time, the folder's size, the packages, and that Otava's change points import.
# Usage: benchmarks/venv_weight.sh REV_BEFORE REV_AFTER   (e.g. 233671c a754129)
# Each side is a git worktree in a temporary folder, removed afterwards; the pip cache is
# whatever this machine has (warm for both sides when run twice).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'git worktree remove --force "$work/before" 2>/dev/null; git worktree remove --force "$work/after" 2>/dev/null; rm -rf "$work"' EXIT
for side in before after; do
  rev=$([ $side = before ] && echo "$1" || echo "$2")
  git worktree add -q -f "$work/$side" "$rev"
  start=$(date +%s.%N)
  python3 -m venv "$work/venv-$side"
  "$work/venv-$side/bin/pip" install -q --disable-pip-version-check -e "$work/$side[test]" 2>/dev/null
  if grep -q "no-deps 'apache-otava" "$work/$side/setup"; then  # as that revision's setup does
    "$work/venv-$side/bin/pip" install -q --disable-pip-version-check --no-deps 'apache-otava==0.8.0' 2>/dev/null
  fi
  end=$(date +%s.%N)
  echo "$side ($rev): $(echo "$end - $start" | bc) s, $(du -sm "$work/venv-$side" | cut -f1) MB," \
       "$("$work/venv-$side/bin/pip" list 2>/dev/null | tail -n +3 | wc -l) packages"
  "$work/venv-$side/bin/python" -c "from otava.analysis import compute_change_points; print('  otava imports')"
done

"""Where the project's own files are: the checkout that holds this package.

The recipes, templates and locks are read from here, and `build/` is written here
unless a build directory is given.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

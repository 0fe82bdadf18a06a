"""What a verb prints: text for a person, or with --json the same content as one JSON
document on stdout.

Verbs call `say(text, **data)` for each thing they report: the text is printed at once
(unless --json), the data is kept and printed as one object when the verb ends. So a
verb's table and its JSON cannot drift apart, and no verb has a JSON printer of its
own. Progress, warnings and errors go to stderr either way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_state: dict[str, Any] = {"json": False, "data": {}, "results": None}


def start(as_json: bool) -> None:
    _state.update(json=as_json, data={}, results=None)


def writes_results(path: Path) -> None:
    """This verb writes its results to PATH: a failure later names it if it was written
    (partial results, marked incomplete)."""
    _state["results"] = path


def results_file() -> Path | None:
    found = _state["results"]
    return found if isinstance(found, Path) else None


def as_json() -> bool:
    return bool(_state["json"])


def say(text: str | None, **data: Any) -> None:
    """Print TEXT (a line or a table) unless --json; keep DATA for --json. A dict
    given under a key twice is merged (outputs written one by one)."""
    kept = _state["data"]
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(kept.get(key), dict):
            kept[key] = {**kept[key], **value}
        else:
            kept[key] = value
    if text is not None and not _state["json"]:
        print(text)


def finish() -> None:
    if _state["json"]:
        json.dump(_state["data"], sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")

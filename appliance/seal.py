"""Sealed manifests: a manifest that a later command trusts (bundle.json, a snapshot's
snapshot.json) carries the sha256 of its own canonical JSON, so an edit made after it
was written (a digest changed by hand, a field added) is refused before use.

A seal catches edits; it is no signature: whoever can write the folder can seal again.
What it guarantees together with the digests of the files the manifest names is that
the manifest and its files are the ones a build or a snapshot wrote together."""

from __future__ import annotations

import hashlib
import json
from typing import Any

FIELD = "manifest_sha256"


def own_digest(data: dict[str, Any]) -> str:
    """The sha256 of DATA's canonical JSON, without its own digest field."""
    body = {k: v for k, v in data.items() if k != FIELD}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sealed(data: dict[str, Any]) -> dict[str, Any]:
    """DATA with its own digest added."""
    return {**data, FIELD: own_digest(data)}


def problem(data: dict[str, Any]) -> str | None:
    """Why DATA's seal does not hold (none, or an edit since), or None."""
    if FIELD not in data:
        return "it has no digest of its own (written before manifests were sealed)"
    if data[FIELD] != own_digest(data):
        return "it was edited after it was written (its own digest does not match)"
    return None

"""Recording a results document: the document once, a run set row per side with its
dimensions, a phase row per counted boot. A document recorded before is not recorded
again (its sha256 is unique), and a document is recorded in one transaction, so an
interrupt leaves it recorded whole or not at all."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from appliance import results
from appliance.results import RunSet
from appliance.store import db
from appliance.store.schema import DIMENSIONS, documents, phases, run_sets


@dataclass(frozen=True)
class Recorded:
    document_id: int
    run_set_ids: tuple[int, ...]
    new: bool  # False: the same document was recorded before


def digest(doc: Mapping[str, Any]) -> str:
    """The document's identity: the sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def booted_cmdline(side: RunSet) -> str | None:
    """The kernel command line a run set's boots had: the bundle's, then the runner's
    words, then --append's (as the runner puts them); None where the bundle's is unknown."""
    bundle, settings = side.get("bundle") or {}, side.get("settings") or {}
    if bundle.get("cmdline") is None:
        return None
    return " ".join(filter(None, (bundle["cmdline"], settings.get("runtime_cmdline"), settings.get("extra_cmdline"))))


@dataclass(frozen=True)
class _Side:
    """A run set as a row sees it: itself and where it stands in its document."""

    run_set: RunSet
    kind: str
    label: str
    name: str

    def part(self, key: str) -> dict[str, Any]:
        found = self.run_set.get(key)
        return found if isinstance(found, dict) else {}


def _workers(side: _Side) -> str | None:
    names = {str(r["worker"].get("host_name")) for r in side.run_set.get("runs", []) if isinstance(r.get("worker"), dict)}
    return ",".join(sorted(names)) or None


# how a run set gives each dimension (schema.DIMENSION_COLUMNS; a test keeps the names the same)
READERS: dict[str, Callable[[_Side], Any]] = {
    "kind": lambda s: s.kind, "side": lambda s: s.name, "label": lambda s: s.label,
    "template": lambda s: s.part("bundle").get("name"), "bundle_digest": lambda s: s.part("bundle").get("digest"),
    "kernel_release": lambda s: s.part("bundle").get("kernel_release"),
    "machine": lambda s: s.part("bundle").get("machine"), "arch": lambda s: s.part("bundle").get("arch"),
    "accel": lambda s: s.part("accel").get("used"), "cpus": lambda s: s.part("bundle").get("cpus"),
    "memory_mib": lambda s: s.part("bundle").get("memory_mib"), "channel": lambda s: s.part("settings").get("channel"),
    "qemu_version": lambda s: s.part("host").get("qemu_version"), "cpu_model": lambda s: s.part("host").get("cpu_model"),
    "host_kernel": lambda s: s.part("host").get("host_kernel"), "host_name": lambda s: s.part("host").get("host_name"),
    "tool_revision": lambda s: s.part("host").get("tool_git_revision"), "worker": _workers,
    "clock": lambda s: s.part("settings").get("clock") or "wall", "cmdline": lambda s: booted_cmdline(s.run_set),
}


def dimensions(side: RunSet, kind: str, label: str, name: str) -> dict[str, Any]:
    """A run set's row: what it measured, where, with what."""
    where = _Side(side, kind, label, name)
    return {**{dimension: READERS[dimension](where) for dimension in DIMENSIONS},
            "complete": bool(side.get("complete")), "boots": len(results.counted(side.get("runs", []))),
            "failed": len(results.failed(side.get("runs", [])))}


def record(engine: Engine, url: str, doc: Mapping[str, Any], label: str = "", source: str = "") -> Recorded:
    """Record DOC (a results document of any kind) with LABEL; SOURCE says where it came from."""
    sha = digest(doc)
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            found = connection.execute(select(documents.c.id).where(documents.c.sha256 == sha)).scalar()
            if found is not None:
                return Recorded(found, _sets_of(connection, found), False)
            document_id = _new_id(connection.execute(insert(documents).values(
                sha256=sha, kind=results.kind(doc), recorded_at=now, source=source or "", body=json.dumps(doc))))
            ids = tuple(_record_side(connection, document_id, now, side, kind=results.kind(doc), label=label, name=name)
                        for name, side in results.labelled_sides(doc).items())
    except IntegrityError:  # another writer recorded the same document between our look and our insert
        with engine.connect() as connection:
            found = connection.execute(select(documents.c.id).where(documents.c.sha256 == sha)).scalar_one()
            return Recorded(found, _sets_of(connection, found), False)
    except DBAPIError as exc:
        raise db.describe(exc, url) from None
    return Recorded(document_id, ids, True)


def _record_side(connection: Connection, document_id: int, now: datetime, side: RunSet, *, kind: str,
                 label: str, name: str) -> int:
    run_set_id = _new_id(connection.execute(insert(run_sets).values(
        document_id=document_id, recorded_at=now, **dimensions(side, kind, label, name))))
    rows = [{"run_set_id": run_set_id, "boot": run["index"], "name": phase, "ms": float(value)}
            for run in results.counted(side.get("runs", []))
            for phase, value in run["phases_ms"].items() if value is not None]
    if rows:
        connection.execute(insert(phases), rows)
    return int(run_set_id)


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an insert of one row"
    return int(key[0])


def _sets_of(connection: Connection, document_id: int) -> tuple[int, ...]:
    found = connection.execute(select(run_sets.c.id).where(run_sets.c.document_id == document_id)
                               .order_by(run_sets.c.id)).scalars()
    return tuple(int(i) for i in found)

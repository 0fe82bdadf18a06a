"""Reading the store: run sets filtered by any dimension, and a phase's figures per run
set (median and the 95% interval of the median, from the boots' own rows)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from appliance.stats import median_ci, quantile
from appliance.store import db
from appliance.store.schema import DIMENSIONS, documents, phases, run_sets


@dataclass(frozen=True)
class RunSet:
    id: int
    recorded_at: datetime
    dims: dict[str, Any]  # every dimension column
    boots: int
    complete: bool


@dataclass(frozen=True)
class Point:
    """One run set's figure for a phase."""

    run_set: RunSet
    n: int
    median: float
    ci: tuple[float, float] | None
    values: tuple[float, ...]


# the dimensions that make two run sets the same measurement, so that a change between
# them is the change of what was measured, not of where or how
SERIES_KEY = ("template", "machine", "arch", "accel", "cpus", "memory_mib", "channel", "host_name", "qemu_version")


def run_set_list(engine: Engine, url: str, where: dict[str, Any], limit: int = 0,
                 not_from: str | None = None) -> list[RunSet]:
    """The run sets whose dimensions equal WHERE's values, oldest first (the newest LIMIT);
    without those whose document's source starts with NOT_FROM (a gate's own candidates)."""
    unknown = set(where) - set(DIMENSIONS)
    if unknown:
        raise db.StoreError(f"not a dimension of the store: {', '.join(sorted(unknown))} "
                            f"(dimensions: {', '.join(DIMENSIONS)})")
    query = select(run_sets)
    for key, value in where.items():
        query = query.where(run_sets.c[key] == value)
    if not_from:
        query = query.join(documents, documents.c.id == run_sets.c.document_id).where(
            ~documents.c.source.startswith(not_from, autoescape=True))
    query = query.order_by(run_sets.c.recorded_at.desc(), run_sets.c.id.desc())
    if limit:
        query = query.limit(limit)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
    except DBAPIError as exc:
        raise db.describe(exc, url) from None
    found = [RunSet(row["id"], row["recorded_at"], {k: row[k] for k in DIMENSIONS}, row["boots"], row["complete"])
             for row in rows]
    return found[::-1]


def points(engine: Engine, url: str, sets: list[RunSet], phase: str) -> list[Point]:
    """PHASE's median and interval for each of SETS that has it (in SETS' order)."""
    if not sets:
        return []
    values: dict[int, list[float]] = defaultdict(list)
    ids = [s.id for s in sets]
    try:
        with engine.connect() as connection:
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                query = select(phases.c.run_set_id, phases.c.ms).where(phases.c.name == phase,
                                                                        phases.c.run_set_id.in_(chunk))
                for run_set_id, ms in connection.execute(query):
                    values[run_set_id].append(ms)
    except DBAPIError as exc:
        raise db.describe(exc, url) from None
    out = []
    for run_set in sets:
        ordered = sorted(values.get(run_set.id, []))
        if ordered:  # the order-statistics interval: exact coverage, and cheap for a long history
            out.append(Point(run_set, len(ordered), quantile(ordered, 0.5), median_ci(ordered), tuple(ordered)))
    return out


def document_of(engine: Engine, url: str, run_set_id: int) -> tuple[dict[str, Any], str]:
    """The whole results document a run set came from, and the run set's side in it."""
    query = (select(documents.c.body, run_sets.c.side).select_from(run_sets.join(documents))
             .where(run_sets.c.id == run_set_id))
    try:
        with engine.connect() as connection:
            row = connection.execute(query).first()
    except DBAPIError as exc:
        raise db.describe(exc, url) from None
    if row is None:
        raise db.StoreError(f"the results store {db.shown(url)} has no run set {run_set_id}")
    return json.loads(row[0]), str(row[1])

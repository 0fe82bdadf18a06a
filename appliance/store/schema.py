"""The store's tables, in SQLAlchemy Core: one schema for SQLite and PostgreSQL.

- documents: each results document once (its sha256 is unique: importing it again
  records nothing), with its kind and its whole JSON, so nothing is lost;
- run_sets: one row per run set of a document (a bench has one; a compare A and B, a
  tune the base and each knob, a range each kernel, a crosscheck each channel), with
  the dimensions a question filters by;
- phases: one row per counted boot and phase, the figures history and gate read.

Schema versions are Alembic revisions (appliance/store/migrations): a store is migrated
to this tool's head when opened, and refused if it is newer than the tool knows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

documents = Table(
    "documents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),  # the file it came from, or the verb that made it
    Column("body", Text, nullable=False),  # the whole results JSON
)

# the dimensions of a run set, each a column a question can filter by
# (name, column): each once; record.READERS says how a run set gives each
DIMENSION_COLUMNS: tuple[Column[Any], ...] = (
    Column("kind", String(16), nullable=False),  # the document's kind
    Column("side", String(200), nullable=False),  # "" for a bench; A, B, base, a knob, a kernel, a channel
    Column("label", String(200), nullable=False),  # --label: a revision of the user's tree, a night
    Column("template", String(200)),
    Column("bundle_digest", String(64)),
    Column("kernel_release", String(200)),
    Column("machine", String(32)),
    Column("arch", String(16)),
    Column("accel", String(8)),
    Column("cpus", Integer),
    Column("memory_mib", Integer),
    Column("channel", String(16)),
    Column("qemu_version", String(200)),
    Column("cpu_model", String(200)),
    Column("host_kernel", String(200)),
    Column("host_name", String(200)),
    Column("tool_revision", String(80)),
    Column("worker", String(200)),
    Column("clock", String(16)),  # wall, instructions, virtual (appliance/clocks.py)
    Column("cmdline", Text),  # the kernel command line booted: changes instruction counts
)
DIMENSIONS = tuple(str(column.name) for column in DIMENSION_COLUMNS)

run_sets = Table(
    "run_sets", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", Integer, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    *DIMENSION_COLUMNS,
    Column("complete", Boolean, nullable=False),
    Column("boots", Integer, nullable=False),  # counted boots that succeeded
    Column("failed", Integer, nullable=False),
)
Index("run_sets_by_template", run_sets.c.template, run_sets.c.machine, run_sets.c.accel)
Index("run_sets_by_label", run_sets.c.label)
Index("run_sets_by_time", run_sets.c.recorded_at)
Index("run_sets_by_clock", run_sets.c.clock)

phases = Table(
    "phases", metadata,
    Column("run_set_id", Integer, ForeignKey("run_sets.id", ondelete="CASCADE"), nullable=False),
    Column("boot", Integer, nullable=False),  # the run's index in its run set
    Column("name", String(32), nullable=False),
    Column("ms", Float, nullable=False),
)
Index("phases_by_name", phases.c.name, phases.c.run_set_id)

"""The first schema: documents, run sets with their dimensions, phases per boot.

Written out here (not taken from schema.py) so that this revision stays what it was
when schema.py moves on: later revisions change it step by step."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "run_sets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.Integer, sa.ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("side", sa.String(200), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        *(sa.Column(name, sa.String(size)) for name, size in (
            ("template", 200), ("bundle_digest", 64), ("kernel_release", 200), ("machine", 32), ("arch", 16),
            ("accel", 8))),
        sa.Column("cpus", sa.Integer),
        sa.Column("memory_mib", sa.Integer),
        *(sa.Column(name, sa.String(size)) for name, size in (
            ("channel", 16), ("qemu_version", 200), ("cpu_model", 200), ("host_kernel", 200), ("host_name", 200),
            ("tool_revision", 80), ("worker", 200))),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("boots", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
    )
    op.create_index("run_sets_by_template", "run_sets", ["template", "machine", "accel"])
    op.create_index("run_sets_by_label", "run_sets", ["label"])
    op.create_index("run_sets_by_time", "run_sets", ["recorded_at"])
    op.create_table(
        "phases",
        sa.Column("run_set_id", sa.Integer, sa.ForeignKey("run_sets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("boot", sa.Integer, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("ms", sa.Float, nullable=False),
    )
    op.create_index("phases_by_name", "phases", ["name", "run_set_id"])


def downgrade() -> None:
    op.drop_table("phases")
    op.drop_table("run_sets")
    op.drop_table("documents")

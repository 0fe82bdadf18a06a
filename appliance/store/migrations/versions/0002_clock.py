"""Clocks (issue 38): each run set says its clock (wall, instructions, virtual) and the
kernel command line it booted with (the bundle's, the runner's and --append's words),
the two dimensions besides the QEMU version that change instruction counts. Run sets
recorded before had only the wall clock; their command line is not known (NULL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("run_sets") as batch:
        batch.add_column(sa.Column("clock", sa.String(16)))
        batch.add_column(sa.Column("cmdline", sa.Text))
    op.execute("UPDATE run_sets SET clock = 'wall'")
    op.create_index("run_sets_by_clock", "run_sets", ["clock"])


def downgrade() -> None:
    op.drop_index("run_sets_by_clock", "run_sets")
    with op.batch_alter_table("run_sets") as batch:
        batch.drop_column("cmdline")
        batch.drop_column("clock")

"""Watch health and the pipeline's recent history (issue 23): ``watches.last_success_at`` (when a
run last listed its source without an error or a block) and ``watches.failed_runs`` (runs in a row
that failed or were blocked), what the metrics and ``health`` report; ``ix_stage_timings_finished``
on stage_timings (finished_at), what "finished in the last hour" and the pipeline page's charts read.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: Union[str, Sequence[str], None] = "0015"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("watches", sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("watches", sa.Column("failed_runs", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_stage_timings_finished", "stage_timings", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_stage_timings_finished", table_name="stage_timings")
    _drop_column("watches", "failed_runs")
    _drop_column("watches", "last_success_at")


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":  # not batch mode: copying ``videos`` would cascade into detections (0013)
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # SQLite >= 3.35
    else:
        op.drop_column(table, column)

"""Stage leases (issue 29, point 5): a running stage's worker and until when it holds the video.

- ``videos.lease_worker``: the worker (Celery node name and process id) running a stage on it;
- ``videos.lease_until``: until when it holds the video unless it renews the lease (every third
  of ``lease_seconds``). Both NULL between stages. An expired lease is a worker gone: the
  reaper requeues the video without waiting for ``stall_timeout``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = ("lease_worker", "lease_until")


def upgrade() -> None:
    op.add_column("videos", sa.Column("lease_worker", sa.Text(), nullable=True))
    op.add_column("videos", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in COLUMNS:
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE videos DROP COLUMN {name}")  # SQLite >= 3.35, never batch mode (0008)
        else:
            op.drop_column("videos", name)

"""More hashes per stored frame, for reposts cropped harder or shown inside another frame.

- ``frame_hashes.regions``: the PDQ hashes of a frame's regions (a harder
  crop of its centre, its content box when it sits inside borders or another
  clip), 64 hex digits each, run together; NULL for rows stored before.

Rows stored before keep matching: their whole-frame hashes were taken from a
512-pixel copy, a median 6-8 bits from the full-size hashes stored now
(``bench/vpdq_reference.py``), well inside the 31 bits two frames may differ.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("frame_hashes", sa.Column("regions", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE frame_hashes DROP COLUMN regions")  # SQLite >= 3.35
    else:
        op.drop_column("frame_hashes", "regions")

"""The inbox's order as an index (issue 22, point 4): ``ix_detections_created`` on detections
(created_at, id), what the newest-first inbox and its keyset pages ("older" / "newer") read
in order instead of sorting every detection.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_detections_created", "detections", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_detections_created", table_name="detections")

"""One stage-timing row per (video, stage).

Two deliveries of one task (the broker hands an unacknowledged task to a
second worker while the first still runs) could each add a row. Keeps the
newest row of each pair, then makes the pair unique.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM stage_timings WHERE id NOT IN "
        "(SELECT max(id) FROM stage_timings GROUP BY video_id, stage)"
    )
    op.create_index("uq_stage_timings_video_stage", "stage_timings", ["video_id", "stage"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_stage_timings_video_stage", table_name="stage_timings")

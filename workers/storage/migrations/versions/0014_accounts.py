"""Accounts of the review app: a name, a role and an argon2 password hash (issue 30);
``watches.changed_by``: the account that added, enabled or disabled a watch last.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("session_epoch", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("watches", sa.Column("changed_by", sa.String(128), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Not batch mode (as 0013): copying and dropping a table would cascade into what refers to it.
        op.execute("ALTER TABLE watches DROP COLUMN changed_by")  # SQLite >= 3.35
    else:
        op.drop_column("watches", "changed_by")
    op.drop_table("accounts")

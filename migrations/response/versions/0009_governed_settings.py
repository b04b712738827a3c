"""governed settings

`governed_settings`: the governed settings this network (their authority) sets, one row per
key set at least once: its value (null: back to the default), a version raised by each
change, who changed it last and when, and the version the last `settings` export carried.
DESIGN.md §9.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'governed_settings',
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('value', sa.JSON(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.Column('exported_version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_governed_settings')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('governed_settings')

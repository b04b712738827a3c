"""governed settings

`governed_settings`: the governed settings the response network (their authority) sent, one
row per key: its value (null: not governed, the deployment's own setting applies), the
version the authority gave it, when and in which batch it arrived. DESIGN.md §9.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 12:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'governed_settings',
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('value', sa.JSON(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('batch_id', sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_governed_settings')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('governed_settings')

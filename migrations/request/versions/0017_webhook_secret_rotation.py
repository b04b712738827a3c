"""webhook secret rotation: the previous secret signs too, until a set time

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 17:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0017'
down_revision: Union[str, Sequence[str], None] = '0016'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.add_column(sa.Column('previous_secret', sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column('previous_secret_until', sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('webhook_endpoints') as batch:
        batch.drop_column('previous_secret_until')
        batch.drop_column('previous_secret')

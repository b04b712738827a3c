"""user profile, sessions cut-off, password sync

`users`: `display_name`, `email`, `notification_preferences` (the user's profile),
`sessions_valid_after` (login sessions and API keys from before it are refused),
`password_set_version` (the version at which this network itself last set the password: a
user's own change made on an older version loses to it) and `password_synced` (false while
a password change waits for `password_sync`), `own_changes_applied` (the last of the
user's own changes applied: a replayed or older one changes nothing).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 14:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('notification_preferences', sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column('sessions_valid_after', sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column('password_set_version', sa.Integer(), server_default='1', nullable=False)
        )
        batch_op.add_column(
            sa.Column('password_synced', sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column('own_changes_applied', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('own_changes_applied')
        batch_op.drop_column('password_synced')
        batch_op.drop_column('password_set_version')
        batch_op.drop_column('sessions_valid_after')
        batch_op.drop_column('notification_preferences')
        batch_op.drop_column('email')
        batch_op.drop_column('display_name')

"""user profile, sessions cut-off, a user's own changes on their way

`users`: `display_name`, `email`, `notification_preferences` (the user's profile),
`sessions_valid_after` (login sessions and API keys from before it are refused) and
`own_changes` (how many changes the user made here). `user_changes`: each such change until
an export carries it to the authority (a password as its bcrypt hash only).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 14:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
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
            sa.Column('own_changes', sa.Integer(), server_default='0', nullable=False)
        )
    op.create_table('user_changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('base_version', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_changes_user_id_users')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_user_changes'))
    )
    with op.batch_alter_table('user_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_changes_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('user_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_changes_user_id'))
    op.drop_table('user_changes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('own_changes')
        batch_op.drop_column('sessions_valid_after')
        batch_op.drop_column('notification_preferences')
        batch_op.drop_column('email')
        batch_op.drop_column('display_name')

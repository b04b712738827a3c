"""request attempts, cancellations, last login

`requests.attempt` and `request_outbox.attempt`: which sending of a request this is (1, then
one more per retry); it travels as the request record's version. `request_outbox.cancelled`:
the outbox entry is a cancellation on its way to the response network.
`account_locks.last_login_at`: when the account last logged in.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:30:00.000000

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
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('request_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(
            sa.Column('cancelled', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table('account_locks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('account_locks', schema=None) as batch_op:
        batch_op.drop_column('last_login_at')
    with op.batch_alter_table('request_outbox', schema=None) as batch_op:
        batch_op.drop_column('cancelled')
        batch_op.drop_column('attempt')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_column('attempt')

"""request attempts, last login

`imported_requests.attempt`, `executions.attempt`, `results.attempt`: which sending of a
request (by the request network: 1, then one more per retry) they belong to; a higher one
arriving is a retry, run once more. `account_locks.last_login_at`: when the account last
logged in.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 13:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TABLES = ('imported_requests', 'executions', 'results')


def upgrade() -> None:
    """Upgrade schema."""
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column('attempt', sa.Integer(), server_default='1', nullable=False)
            )
    with op.batch_alter_table('account_locks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('account_locks', schema=None) as batch_op:
        batch_op.drop_column('last_login_at')
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('attempt')

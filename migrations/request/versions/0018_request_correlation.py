"""request correlation: the id a request was submitted under, its trace, its first read

`requests.correlation_id` and `request_outbox.correlation_id`: the id of the HTTP call that
submitted the request (`X-Request-ID`), carried in its records to the response network and
back; `traceparent` likewise, the W3C trace context it was submitted in. Both are null for
requests submitted before them. `responses.first_read_at`: when the owner first read the
response.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 18:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0018'
down_revision: Union[str, Sequence[str], None] = '0017'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    for table in ('requests', 'request_outbox'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('correlation_id', sa.String(length=128), nullable=True))
            batch_op.add_column(sa.Column('traceparent', sa.String(length=55), nullable=True))
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_read_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_column('first_read_at')
    for table in ('request_outbox', 'requests'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('traceparent')
            batch_op.drop_column('correlation_id')

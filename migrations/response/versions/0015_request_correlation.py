"""request correlation: the id a request was submitted under and its trace

`imported_requests.correlation_id` and `traceparent`: as the request's record carried them
from the request network (null for records without them); `results.correlation_id` and
`traceparent`: those its result record carries back.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 18:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0015'
down_revision: Union[str, Sequence[str], None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    for table in ('imported_requests', 'results'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('correlation_id', sa.String(length=128), nullable=True))
            batch_op.add_column(sa.Column('traceparent', sa.String(length=55), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    for table in ('results', 'imported_requests'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('traceparent')
            batch_op.drop_column('correlation_id')

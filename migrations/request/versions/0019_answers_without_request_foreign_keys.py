"""answers without request foreign keys: `responses` and `request_events` rows name their
request without a per-row foreign-key check

The results import writes a response and a history event for every answer, a million in
one import; each foreign-key check is a lookup into `requests` per row (21.0 s → 12.1 s and
15.3 s → 7.6 s for 1,000,000 rows, docs/PERFORMANCE.md). Requests are never deleted, and
every writer of these rows holds the request it names: the import checks each result's
request in the same transaction (an unknown one refuses the batch).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 19:30:00.000000

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0019'
down_revision: Union[str, Sequence[str], None] = '0018'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_responses_request_id_requests'), type_='foreignkey')
    with op.batch_alter_table('request_events', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_request_events_request_id_requests'), type_='foreignkey'
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('request_events', schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f('fk_request_events_request_id_requests'), 'requests', ['request_id'], ['id']
        )
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f('fk_responses_request_id_requests'), 'requests', ['request_id'], ['id']
        )

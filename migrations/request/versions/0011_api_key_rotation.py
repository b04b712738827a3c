"""API key rotation, admin disable, violations by key

`api_keys.rotated_at`, `previous_key_hmac`, `previous_valid_until`: a rotation's new secret
replaces `key_hmac`; the secret it replaced keeps working until `previous_valid_until` (one
previous secret at most). `api_keys.disabled_at`, `disabled_by`: an admin disabled the key
(reversible, unlike `revoked_at`). `rate_limit_violations.key_id`: the API key a refused
submission came with (null: a login session), for the keys' usage figures.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('previous_key_hmac', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('previous_valid_until', sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('disabled_by', sa.String(length=36), nullable=True))
    with op.batch_alter_table('rate_limit_violations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Downgrade schema (a rotated key's previous secret stops working)."""
    with op.batch_alter_table('rate_limit_violations', schema=None) as batch_op:
        batch_op.drop_column('key_id')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('disabled_by')
        batch_op.drop_column('disabled_at')
        batch_op.drop_column('previous_valid_until')
        batch_op.drop_column('previous_key_hmac')
        batch_op.drop_column('rotated_at')

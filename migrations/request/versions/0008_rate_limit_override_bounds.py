"""rate limit override bounds

Each window of `rate_limit_overrides` is NULL (inherit) or 0..10,000,000, the limiter's
bound (`shared.ratelimit.MAX_LIMIT`; written out here so this migration never changes when
the code does). Rows written before the check existed are brought into range first, the
way the service reads them: a value above the bound becomes the bound, a negative one NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MAX_LIMIT = 10_000_000
WINDOWS = ('minute', 'hour', 'day')


def upgrade() -> None:
    """Upgrade schema."""
    for window in WINDOWS:
        op.execute(
            f'UPDATE rate_limit_overrides SET "{window}" = {MAX_LIMIT} '
            f'WHERE "{window}" > {MAX_LIMIT}'
        )
        op.execute(f'UPDATE rate_limit_overrides SET "{window}" = NULL WHERE "{window}" < 0')
    with op.batch_alter_table('rate_limit_overrides', schema=None) as batch_op:
        for window in WINDOWS:
            batch_op.create_check_constraint(
                f'{window}_in_range',
                sa.text(
                    f'"{window}" IS NULL OR ("{window}" >= 0 AND "{window}" <= {MAX_LIMIT})'
                ),
            )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('rate_limit_overrides', schema=None) as batch_op:
        for window in WINDOWS:
            batch_op.drop_constraint(
                batch_op.f(f'ck_rate_limit_overrides_{window}_in_range'), type_='check'
            )

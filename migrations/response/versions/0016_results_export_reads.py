"""results export reads: unexported results in order without a sort; hits out of line

`ix_results_unexported` holds only the results no batch has carried yet (`batch_id IS
NULL`), in the order the export reads them (`executed_at`, `request_id`): the export walks
it instead of sorting every unexported row, and a result leaves it once marked exported.

PostgreSQL: `hits` is stored out of line (TOAST, uncompressed) in any row longer than 128
bytes, so marking a result exported rewrites a row of ~150 bytes instead of one holding
every hit (the hits are kept, not copied). 1,000,000 results of three hits: reading and
marking them all took 11.8 s instead of 37.0 s (docs/PERFORMANCE.md). Rows already stored
move out of line when next written.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 19:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0016'
down_revision: Union[str, Sequence[str], None] = '0015'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index(
            'ix_results_unexported',
            ['executed_at', 'request_id'],
            unique=False,
            postgresql_where=sa.text('batch_id IS NULL'),
            sqlite_where=sa.text('batch_id IS NULL'),
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE results SET (toast_tuple_target = 128)')
        op.execute('ALTER TABLE results ALTER COLUMN hits SET STORAGE EXTERNAL')


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE results ALTER COLUMN hits SET STORAGE EXTENDED')
        op.execute('ALTER TABLE results RESET (toast_tuple_target)')
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_unexported')

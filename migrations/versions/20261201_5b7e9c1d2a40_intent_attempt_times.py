"""intent attempt times: when each send of a create began, so a lost one is looked for around
every attempt

Revision ID: 5b7e9c1d2a40
Revises: 5b7d0e4c9a21
Create Date: 2026-12-01 01:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '5b7e9c1d2a40'
down_revision: Union[str, Sequence[str], None] = '5b7d0e4c9a21'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('intents') as batch:
        batch.add_column(
            sa.Column(
                'attempt_times',
                sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('intents') as batch:
        batch.drop_column('attempt_times')

"""links.write_in_flight: the update a sync is sending, recorded before it goes, so a retry
folds what landed of it when its own bookkeeping was lost (a database outage, a dead worker)

Revision ID: 6a3c8e1f2b70
Revises: 4e8b2f6a1c30
Create Date: 2026-12-01 10:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '6a3c8e1f2b70'
down_revision: Union[str, Sequence[str], None] = '4e8b2f6a1c30'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('links') as batch:
        batch.add_column(
            sa.Column(
                'write_in_flight',
                sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('links') as batch:
        batch.drop_column('write_in_flight')

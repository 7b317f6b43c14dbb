"""intent baselines: a create's planned baselines, for linking a record found after a lost reply

Revision ID: 3f1c2a9d7e10
Revises: 8632a5b87480
Create Date: 2026-11-25 04:05:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '3f1c2a9d7e10'
down_revision: Union[str, Sequence[str], None] = '8632a5b87480'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('intents') as batch:
        batch.add_column(
            sa.Column(
                'baselines',
                sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('intents') as batch:
        batch.drop_column('baselines')

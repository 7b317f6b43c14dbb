"""drop intents.last_error: nothing ever wrote or read it (a failure's message lives in its
dead letter)

Revision ID: 4e8b2f6a1c30
Revises: 9d4a1b2c3e50
Create Date: 2026-12-01 07:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '4e8b2f6a1c30'
down_revision: Union[str, Sequence[str], None] = '9d4a1b2c3e50'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('intents') as batch:
        batch.drop_column('last_error')


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('intents') as batch:
        batch.add_column(sa.Column('last_error', sa.String(), nullable=True))

"""cursor listing position: where an unfinished poll pass over an unordered listing (Zenvia's
date listings) goes on, so a poll the budget stops resumes instead of starting over

Revision ID: 9d4a1b2c3e50
Revises: 7c2d4e6f8a10
Create Date: 2026-12-01 04:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '9d4a1b2c3e50'
down_revision: Union[str, Sequence[str], None] = '7c2d4e6f8a10'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('cursors') as batch:
        batch.add_column(
            sa.Column(
                'listing',
                sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('cursors') as batch:
        batch.drop_column('listing')

"""links.comments_due_at: when the comment sweep lists a linked open ticket's actions again
(Zenvia may not move updatedAt when a comment is added)

Revision ID: 7c2d4e6f8a10
Revises: 5b7e9c1d2a40
Create Date: 2026-12-01 01:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '7c2d4e6f8a10'
down_revision: Union[str, Sequence[str], None] = '5b7e9c1d2a40'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('links') as batch:
        batch.add_column(sa.Column('comments_due_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f('ix_links_comments_due_at'), ['comments_due_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('links') as batch:
        batch.drop_index(batch.f('ix_links_comments_due_at'))
        batch.drop_column('comments_due_at')

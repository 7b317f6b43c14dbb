"""link history: what each sync did to a pair, for `links history`; pruned after retention

Revision ID: 5b7d0e4c9a21
Revises: 3f1c2a9d7e10
Create Date: 2026-12-01 00:31:33.950800

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = '5b7d0e4c9a21'
down_revision: Union[str, Sequence[str], None] = '3f1c2a9d7e10'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('link_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('side', sa.String(length=16), nullable=True),
    sa.Column('record_id', sa.String(length=64), nullable=True),
    sa.Column('field', sa.String(length=128), nullable=True),
    sa.Column('old', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('new', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('detail', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['links.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_link_history_at'), 'link_history', ['at'], unique=False)
    op.create_index('ix_link_history_link_id_id', 'link_history', ['link_id', 'id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_link_history_link_id_id', table_name='link_history')
    op.drop_index(op.f('ix_link_history_at'), table_name='link_history')
    op.drop_table('link_history')

"""derived_spaces: a collection's spaces derived from its backbone spaces (recipe, fitted
arrays, how they were chosen); collections.default_space: the space used when none is named

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'derived_spaces',
        sa.Column('collection_id', sa.Integer(), sa.ForeignKey('collections.id', ondelete='CASCADE'), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('bases', sa.JSON(), nullable=False),
        sa.Column('recipe', sa.JSON(), nullable=False),
        sa.Column('arrays', sa.LargeBinary(), nullable=True),
        sa.Column('report', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('collection_id', 'name'),
    )
    with op.batch_alter_table('collections') as batch:
        batch.add_column(sa.Column('default_space', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('collections') as batch:
        batch.drop_column('default_space')
    op.drop_table('derived_spaces')

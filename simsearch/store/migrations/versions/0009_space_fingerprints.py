"""space_fingerprints: what made each collection's vectors of a space (model, weights digest,
pooling, views, precision, dimension) and how the space came to be (embedded, imported, a tuning
variant)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 13:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'space_fingerprints',
        sa.Column('collection_id', sa.Integer(), sa.ForeignKey('collections.id', ondelete='CASCADE'), nullable=False),
        sa.Column('space', sa.String(length=100), nullable=False),
        sa.Column('fingerprint', sa.JSON(), nullable=False),
        sa.Column('origin', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('collection_id', 'space'),
    )


def downgrade() -> None:
    op.drop_table('space_fingerprints')

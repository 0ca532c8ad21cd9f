"""image_hashes: perceptual hashes of each image's picture (computed at ingest; images stored
before are hashed from their thumbnails when the near-duplicate finder first needs them)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 13:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'image_hashes',
        sa.Column('image_id', sa.Integer(), sa.ForeignKey('images.id', ondelete='CASCADE'), nullable=False),
        sa.Column('method', sa.String(length=100), nullable=False),
        sa.Column('hashes', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('image_id'),
    )


def downgrade() -> None:
    op.drop_table('image_hashes')

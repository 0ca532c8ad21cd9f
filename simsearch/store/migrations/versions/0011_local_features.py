"""image_features: local features (keypoints and descriptors) of each image's picture, for the
geometric verification of search results (computed at ingest; images stored before get theirs
from their original file when a search first verifies them)

Revision ID: 0011_local_features
Revises: 0010
Create Date: 2026-12-06 16:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_local_features'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'image_features',
        sa.Column('image_id', sa.Integer(), sa.ForeignKey('images.id', ondelete='CASCADE'), nullable=False),
        sa.Column('method', sa.String(length=100), nullable=False),
        sa.Column('features', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('image_id'),
    )


def downgrade() -> None:
    op.drop_table('image_features')

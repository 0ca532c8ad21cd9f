"""images.ingest_run_id indexed: the images a run stored are read without reading the
collection's (a sharded job's progress counts those of its shards that ran twice; a count over
every image of the collection took 3 s at 82,000 images on each poll of a job's progress)

Revision ID: 0012
Revises: 0011_local_features
Create Date: 2026-12-08 00:30:00
"""
from alembic import op


revision = '0012'
down_revision = '0011_local_features'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_images_ingest_run', 'images', ['ingest_run_id'])


def downgrade() -> None:
    op.drop_index('ix_images_ingest_run', table_name='images')

"""ingest_runs.requested_by: who asked for a job through the API (the cap on each client's
unfinished jobs)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 13:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.add_column(sa.Column('requested_by', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.drop_column('requested_by')

"""ingest_runs.owner: which process runs an in-process job, so that a restarted server can resume
the jobs of a process that died

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.drop_column('owner')

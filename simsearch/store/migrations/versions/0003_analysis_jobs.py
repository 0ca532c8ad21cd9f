"""ingest_runs.kind and .params: the jobs table also holds background analysis jobs (clusters,
map, evaluation, comparison), with their parameters as JSON

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=32), nullable=False, server_default='ingest'))
        batch.add_column(sa.Column('params', sa.JSON(), nullable=True))
    op.create_index('ix_ingest_runs_kind_status', 'ingest_runs', ['kind', 'status'])


def downgrade() -> None:
    op.drop_index('ix_ingest_runs_kind_status', table_name='ingest_runs')
    with op.batch_alter_table('ingest_runs') as batch:
        batch.drop_column('params')
        batch.drop_column('kind')

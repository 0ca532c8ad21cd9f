"""ingest_runs.parent_id and .attempts: a large queued ingest is split into shard jobs that any
worker takes (kind "shard", parent_id = the job); attempts counts how often a job was started
(a worker that died mid-way makes RQ start it again)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ingest_runs') as batch:
        batch.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch.create_foreign_key('fk_ingest_runs_parent_id', 'ingest_runs', ['parent_id'], ['id'], ondelete='CASCADE')
    op.create_index('ix_ingest_runs_parent_id', 'ingest_runs', ['parent_id'])


def downgrade() -> None:
    op.drop_index('ix_ingest_runs_parent_id', table_name='ingest_runs')
    with op.batch_alter_table('ingest_runs') as batch:
        batch.drop_constraint('fk_ingest_runs_parent_id', type_='foreignkey')
        batch.drop_column('attempts')
        batch.drop_column('parent_id')

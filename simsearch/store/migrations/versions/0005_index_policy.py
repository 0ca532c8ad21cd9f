"""index_states: what the index policy chose and measured (kind, tuned parameters, recall@10,
memory, build time, vectors at the last recall check) and the ids of deleted vectors the index
still holds, masked in searches until compaction; images: the (collection, label) index gains
status, so a filtered search's ids are read from the index alone

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

COLUMNS = ('kind', 'params', 'recall', 'memory_bytes', 'build_seconds', 'checked_count', 'masked')


def upgrade() -> None:
    with op.batch_alter_table('index_states') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('params', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('recall', sa.Float(), nullable=True))
        batch.add_column(sa.Column('memory_bytes', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('build_seconds', sa.Float(), nullable=True))
        batch.add_column(sa.Column('checked_count', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('masked', sa.LargeBinary(), nullable=True))
    op.create_index('ix_images_collection_label_status', 'images', ['collection_id', 'label', 'status'])
    op.drop_index('ix_images_collection_label', table_name='images')


def downgrade() -> None:
    op.create_index('ix_images_collection_label', 'images', ['collection_id', 'label'])
    op.drop_index('ix_images_collection_label_status', table_name='images')
    with op.batch_alter_table('index_states') as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)

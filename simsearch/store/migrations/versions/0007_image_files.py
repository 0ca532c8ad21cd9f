"""image_files: every file that resolved to an image (path, size, mtime, ingest run), many files
per image; images.file_count (its files: lists read it instead of counting); ingest_runs.duplicates
(files a run found to be byte-identical copies of an image under another path). Each existing
image gets its current source_path as its first file.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'image_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), sa.ForeignKey('images.id', ondelete='CASCADE'), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=True),
        sa.Column('mtime', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ingest_run_id', sa.Integer(), sa.ForeignKey('ingest_runs.id', ondelete='SET NULL'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('image_id', 'path', name='uq_image_files_image_path'),
    )
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('file_count', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('ingest_runs') as batch:
        batch.add_column(sa.Column('duplicates', sa.Integer(), server_default='0', nullable=False))
    # today's rows: one image, one file (its source_path); size and mtime were never recorded
    op.execute("INSERT INTO image_files (image_id, path, ingest_run_id, created_at) "
               "SELECT id, source_path, ingest_run_id, created_at FROM images ORDER BY id")
    op.create_index('ix_images_collection_copies', 'images', ['collection_id', 'id'],
                    postgresql_where=sa.text('file_count > 1'), sqlite_where=sa.text('file_count > 1'))


def downgrade() -> None:
    op.drop_index('ix_images_collection_copies', table_name='images')
    with op.batch_alter_table('ingest_runs') as batch:
        batch.drop_column('duplicates')
    with op.batch_alter_table('images') as batch:
        batch.drop_column('file_count')
    op.drop_table('image_files')

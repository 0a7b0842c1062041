"""entry stamps: an index on entries (user_id, updated_at, number)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

A person's search index lives in memory and, before each query, compares the
journal's stamp (how many entries, the highest number, the latest change) with
its own. This index covers that question (and the per-entry stamps), so it is read instead
of every one of the person's rows (about 10 KB each with their vectors).
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_entries_user_updated', 'entries', ['user_id', 'updated_at', 'number'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_entries_user_updated', table_name='entries')

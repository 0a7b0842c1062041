"""chat claims: which worker handles a person's chat, as a lease that expires

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

Several `spanner telegram --worker` processes share one inbox. Each claims a
person's chat for a short lease (owner, expires_at), so that chat's updates are
handled in order by one process at a time; a worker that dies stops renewing,
and its chats pass to another (storage.claims).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'chat_claims',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(length=200), server_default='', nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_chat_claims_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_chat_claims')),
    )
    with op.batch_alter_table('chat_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_claims_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chat_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_claims_expires_at'))
    op.drop_table('chat_claims')

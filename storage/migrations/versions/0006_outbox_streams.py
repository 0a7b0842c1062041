"""outbox streams: a streamed message's update and Telegram id; handled and sent payloads pruned

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

A partial (streamed) message is an outbox row like any other, tagged with the
update it answers (stream_of); once sent, Telegram's message id is kept
(message_id), so after a crash the message is completed or deleted. Handled
inbox rows and sent outbox rows keep only their ids: their text is not needed
for redelivery, and keeping it would let deleted text live on in every backup.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stream_of', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('message_id', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_outbox_stream_of'), ['stream_of'], unique=False)
    # The empty value as a bound parameter: x'' is a blob in SQLite but a bit string in PostgreSQL.
    empty = sa.bindparam("empty", b"", type_=sa.LargeBinary())
    op.execute(sa.text("UPDATE inbox SET payload_ct = :empty WHERE handled_at IS NOT NULL").bindparams(empty))
    op.execute(sa.text("UPDATE outbox SET payload_ct = :empty WHERE sent_at IS NOT NULL").bindparams(empty))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_stream_of'))
        batch_op.drop_column('message_id')
        batch_op.drop_column('stream_of')

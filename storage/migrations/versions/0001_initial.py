"""initial schema: users, keys, entries, answers, conversation state

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_meta'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('handle', sa.String(length=200), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('next_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('handle', name=op.f('uq_users_handle'))
    )
    op.create_table('conversation_state',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('state_ct', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_conversation_state_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_conversation_state'))
    )
    op.create_table('entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('protocol', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('title_ct', sa.LargeBinary(), nullable=False),
    sa.Column('note_ct', sa.LargeBinary(), nullable=False),
    sa.Column('summary_ct', sa.LargeBinary(), nullable=False),
    sa.Column('tags_ct', sa.LargeBinary(), nullable=False),
    sa.Column('suggestion_ct', sa.LargeBinary(), nullable=False),
    sa.Column('vector_ct', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_entries_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entries')),
    sa.UniqueConstraint('uid', name=op.f('uq_entries_uid')),
    sa.UniqueConstraint('user_id', 'number', name='uq_entries_user_number')
    )
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entries_user_id'), ['user_id'], unique=False)

    op.create_table('user_keys',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_keys'))
    )
    op.create_table('entry_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.String(length=40), nullable=False),
    sa.Column('skipped', sa.Boolean(), nullable=False),
    sa.Column('question_ct', sa.LargeBinary(), nullable=False),
    sa.Column('answer_ct', sa.LargeBinary(), nullable=False),
    sa.Column('followup_question_ct', sa.LargeBinary(), nullable=False),
    sa.Column('followup_answer_ct', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_entry_answers_entry_id_entries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entry_answers'))
    )
    with op.batch_alter_table('entry_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_entry_answers_entry_id'), ['entry_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('entry_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entry_answers_entry_id'))

    op.drop_table('entry_answers')
    op.drop_table('user_keys')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entries_user_id'))

    op.drop_table('entries')
    op.drop_table('conversation_state')
    op.drop_table('users')
    op.drop_table('meta')

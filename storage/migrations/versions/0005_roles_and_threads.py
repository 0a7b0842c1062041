"""several roles per person, mentoring notes as a thread, notices that know who caused them

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_roles_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role', name=op.f('pk_user_roles'))
    )
    # Everyone keeps the one role they had.
    op.execute("INSERT INTO user_roles (user_id, role) SELECT id, role FROM users")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('role')

    op.create_table('mentoring_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pairing_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('body_ct', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_mentoring_messages_author_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['pairing_id'], ['pairings.id'], name=op.f('fk_mentoring_messages_pairing_id_pairings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mentoring_messages'))
    )
    with op.batch_alter_table('mentoring_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mentoring_messages_pairing_id'), ['pairing_id'], unique=False)

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='', nullable=False))
        batch_op.create_index(batch_op.f('ix_notifications_source_id'), ['source_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_notifications_source_id_users'), 'users', ['source_id'], ['id'],
                                    ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notifications_source_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_notifications_source_id'))
        batch_op.drop_column('kind')
        batch_op.drop_column('source_id')

    with op.batch_alter_table('mentoring_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mentoring_messages_pairing_id'))
    op.drop_table('mentoring_messages')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sa.String(length=20), server_default='spanner', nullable=False))
    # One role each again: the first, in the order the roles are listed for people.
    op.execute("UPDATE users SET role = COALESCE((SELECT role FROM user_roles WHERE user_roles.user_id = users.id "
               "ORDER BY CASE role WHEN 'spanner' THEN 0 WHEN 'mentee' THEN 1 WHEN 'mentor' THEN 2 "
               "WHEN 'supervisor' THEN 3 ELSE 4 END LIMIT 1), 'spanner')")
    op.drop_table('user_roles')

"""accounts: a must-change-password flag, a session version, the last sign-in; failed sign-ins
kept apart (a throttle replaces the account lockout)

Revision ID: 0008
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa
import tawasul.db


revision = '0008'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', tawasul.db.UTCDateTime(), nullable=False),
    sa.Column('username', sa.String(length=60), nullable=False),
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.create_index('ix_login_failure_at', ['at'], unique=False)
        batch_op.create_index('ix_login_failure_username_at', ['username', 'at'], unique=False)
        batch_op.create_index('ix_login_failure_address_at', ['address', 'at'], unique=False)

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_login_at', tawasul.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_login_address', sa.String(length=45), nullable=True))
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')


def downgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('locked_until', tawasul.db.UTCDateTime(), nullable=True))
        batch_op.drop_column('last_login_address')
        batch_op.drop_column('last_login_at')
        batch_op.drop_column('session_version')
        batch_op.drop_column('must_change_password')

    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failure_address_at')
        batch_op.drop_index('ix_login_failure_username_at')
        batch_op.drop_index('ix_login_failure_at')

    op.drop_table('login_failure')

"""sms: the outbox's sending state (status, attempts, due time and lease, idempotency key, failure)

Revision ID: 0009
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import tawasul.db


revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('status', sa.String(length=10), nullable=False, server_default='queued'))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('due_at', tawasul.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('claim', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('last_error', sa.String(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('provider_id', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('failed_at', tawasul.db.UTCDateTime(), nullable=True))
    # Messages queued before: each its own key; those already stamped sent are sent.
    op.execute("UPDATE outbox_message SET key = 'm' || id, due_at = created_at, "
               "status = CASE WHEN sent_at IS NULL THEN 'queued' ELSE 'sent' END")
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.alter_column('key', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('due_at', existing_type=tawasul.db.UTCDateTime(), nullable=False)
        batch_op.alter_column('status', server_default=None)
        batch_op.alter_column('attempts', server_default=None)
        batch_op.alter_column('claim', server_default=None)
        batch_op.alter_column('last_error', server_default=None)
        batch_op.alter_column('provider_id', server_default=None)
        batch_op.create_unique_constraint('uq_outbox_message_key', ['key'])
        batch_op.create_index('ix_outbox_message_due', ['status', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_due')
        batch_op.drop_constraint('uq_outbox_message_key', type_='unique')
        for column in ('failed_at', 'provider_id', 'last_error', 'claim', 'due_at', 'attempts', 'status', 'key'):
            batch_op.drop_column(column)

"""index the tickets and calls of an appointment (public tracking lists a session's follow-ups;
the console finds a session's call)

Revision ID: 0006
Revises: 0005
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f('ix_ticket_appointment_id'), 'ticket', ['appointment_id'], unique=False)
    op.create_index(op.f('ix_call_appointment_id'), 'call', ['appointment_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_call_appointment_id'), table_name='call')
    op.drop_index(op.f('ix_ticket_appointment_id'), table_name='ticket')

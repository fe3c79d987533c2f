"""index appointments by status (route_call asks, for every call due now, whether the governor
is in a session: without it, a scan of every appointment)

Revision ID: 0007
Revises: 0006
"""
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_appointment_status', 'appointment', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_appointment_status', table_name='appointment')

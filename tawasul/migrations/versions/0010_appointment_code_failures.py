"""count wrong check-in codes on the appointment (keyed on calls, across calls and connections: at
the limit the appointment takes no call until the desk checks the citizen in)

Revision ID: 0010
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('appointment') as batch:
        batch.add_column(sa.Column('code_failures', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('appointment') as batch:
        batch.drop_column('code_failures')

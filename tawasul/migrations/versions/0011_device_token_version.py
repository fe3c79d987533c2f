"""a phone's provisioning token version: IT rolls one device's token without touching the others

Revision ID: 0011
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('token_version', sa.Integer(), nullable=False, server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.drop_column('token_version')

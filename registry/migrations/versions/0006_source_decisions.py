"""source.retry_at and source.failures: when a failed source is tried again, and how often it failed

Revision ID: 0006_source_decisions
Revises: 0005_sender_name
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006_source_decisions'
down_revision = '0005_sender_name'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('source', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('failures', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('source', schema=None) as batch_op:
        batch_op.drop_column('failures')
        batch_op.drop_column('retry_at')

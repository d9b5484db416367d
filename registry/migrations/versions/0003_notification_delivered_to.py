"""notification.delivered_to: recipients an earlier attempt already reached

Revision ID: 0003_delivered_to
Revises: 0002_coverage
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_delivered_to'
down_revision = '0002_coverage'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_to', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('delivered_to')

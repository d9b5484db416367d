"""notification.sender_name: the From display name fixed when the letter was rendered

Revision ID: 0005_sender_name
Revises: 0004_people_roles
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005_sender_name'
down_revision = '0004_people_roles'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('sender_name')

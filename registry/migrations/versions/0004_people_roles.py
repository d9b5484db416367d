"""rep.role replaces rep.discovered; message.date_source; departures keyed by rep and tenure

rep.tenure and handover.tenure tell departures of one rep apart; handoveritem.added_later marks
customers who joined an open plan; notification.successor_rep_id is the successor a letter names.

Revision ID: 0004_people_roles
Revises: 0003_delivered_to
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004_people_roles'
down_revision = '0003_delivered_to'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rep', schema=None) as batch_op:
        batch_op.add_column(sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='rep'))
    op.execute("UPDATE rep SET role = 'colleague' WHERE discovered")
    with op.batch_alter_table('rep', schema=None) as batch_op:
        batch_op.drop_column('discovered')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('date_source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                                      server_default='header'))
    for table in ('rep', 'handover'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('tenure', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('handoveritem', schema=None) as batch_op:
        batch_op.add_column(sa.Column('added_later', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('successor_rep_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_notification_successor_rep', 'rep', ['successor_rep_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_constraint('fk_notification_successor_rep', type_='foreignkey')
        batch_op.drop_column('successor_rep_id')
    with op.batch_alter_table('handoveritem', schema=None) as batch_op:
        batch_op.drop_column('added_later')
    for table in ('rep', 'handover'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('tenure')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('date_source')
    with op.batch_alter_table('rep', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discovered', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE rep SET discovered = (role = 'colleague')")
    with op.batch_alter_table('rep', schema=None) as batch_op:
        batch_op.drop_column('role')

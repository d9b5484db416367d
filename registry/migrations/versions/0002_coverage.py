"""coverage snapshots

Revision ID: 0002_coverage
Revises: 0001
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002_coverage'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coveragesnapshot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('coverage_class', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('customers', sa.Integer(), nullable=False),
    sa.Column('taken_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('day', 'coverage_class')
    )
    with op.batch_alter_table('coveragesnapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coveragesnapshot_day'), ['day'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('coveragesnapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coveragesnapshot_day'))
    op.drop_table('coveragesnapshot')

"""round_lease: which daemon runs a shared round (departures, coverage) now

Revision ID: 0007_round_leases
Revises: 0006_source_decisions
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007_round_leases'
down_revision = '0006_source_decisions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'round_lease',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('lease_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('last_finished', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('round_lease')

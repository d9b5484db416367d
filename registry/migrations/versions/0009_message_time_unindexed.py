"""message.occurred_at loses its index: no query reads messages by time (coverage and evidence
reach them through their interactions, which have their own time indexes), and keeping it cost
about a tenth of storing a synced batch

Revision ID: 0009_message_time_unindexed
Revises: 0008_coverage_aggregates
"""

from alembic import op

revision = '0009_message_time_unindexed'
down_revision = '0008_coverage_aggregates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_index('ix_message_occurred_at')


def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.create_index('ix_message_occurred_at', ['occurred_at'], unique=False)

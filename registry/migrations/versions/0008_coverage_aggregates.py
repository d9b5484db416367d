"""coverage_bucket and coverage_total: interactions per customer, rep, channel and month, and their
sums, filled from the interactions; triggers recount a month and its sum when a merge moves or
deletes interactions

Revision ID: 0008_coverage_aggregates
Revises: 0007_round_leases
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0008_coverage_aggregates'
down_revision = '0007_round_leases'
branch_labels = None
depends_on = None

COLUMNS = "customer_id, rep_id, channel, month, interactions, first_at, last_at"
TOTAL_COLUMNS = "customer_id, rep_id, channel, interactions, first_at, last_at"
FILL_TOTALS = (f"INSERT INTO coverage_total ({TOTAL_COLUMNS}) SELECT customer_id, rep_id, channel, sum(interactions), "
               "min(first_at), max(last_at) FROM coverage_bucket GROUP BY customer_id, rep_id, channel")
MONTH = {
    "sqlite": "date({at}, 'start of month')",
    "postgresql": "CAST(date_trunc('month', {at} AT TIME ZONE 'UTC') AS DATE)",
}

SQLITE_RECOUNT = """
    DELETE FROM coverage_bucket WHERE customer_id = {row}.customer_id AND rep_id = {row}.rep_id
        AND channel = {row}.channel AND month = date({row}.occurred_at, 'start of month');
    INSERT INTO coverage_bucket ({columns})
        SELECT customer_id, rep_id, channel, date({row}.occurred_at, 'start of month'), count(*),
               min(occurred_at), max(occurred_at)
        FROM interaction WHERE customer_id = {row}.customer_id AND rep_id = {row}.rep_id
            AND channel = {row}.channel AND occurred_at >= date({row}.occurred_at, 'start of month')
            AND occurred_at < date({row}.occurred_at, 'start of month', '+1 month')
        GROUP BY customer_id, rep_id, channel;
    DELETE FROM coverage_total WHERE customer_id = {row}.customer_id AND rep_id = {row}.rep_id
        AND channel = {row}.channel;
    INSERT INTO coverage_total ({total_columns})
        SELECT customer_id, rep_id, channel, sum(interactions), min(first_at), max(last_at)
        FROM coverage_bucket WHERE customer_id = {row}.customer_id AND rep_id = {row}.rep_id
            AND channel = {row}.channel
        GROUP BY customer_id, rep_id, channel;
"""

POSTGRES_FUNCTIONS = f"""
CREATE FUNCTION coverage_bucket_recount(p_customer INTEGER, p_rep INTEGER, p_channel VARCHAR,
                                        p_at TIMESTAMP WITH TIME ZONE) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p_month DATE := CAST(date_trunc('month', p_at AT TIME ZONE 'UTC') AS DATE);
BEGIN
    DELETE FROM coverage_bucket
        WHERE customer_id = p_customer AND rep_id = p_rep AND channel = p_channel AND month = p_month;
    INSERT INTO coverage_bucket ({COLUMNS})
        SELECT p_customer, p_rep, p_channel, p_month, count(*), min(occurred_at), max(occurred_at)
        FROM interaction
        WHERE customer_id = p_customer AND rep_id = p_rep AND channel = p_channel
            AND occurred_at >= (CAST(p_month AS TIMESTAMP) AT TIME ZONE 'UTC')
            AND occurred_at < (CAST(p_month + INTERVAL '1 month' AS TIMESTAMP) AT TIME ZONE 'UTC')
        HAVING count(*) > 0;
    DELETE FROM coverage_total WHERE customer_id = p_customer AND rep_id = p_rep AND channel = p_channel;
    INSERT INTO coverage_total ({TOTAL_COLUMNS})
        SELECT p_customer, p_rep, p_channel, sum(interactions), min(first_at), max(last_at)
        FROM coverage_bucket WHERE customer_id = p_customer AND rep_id = p_rep AND channel = p_channel
        HAVING count(*) > 0;
END $$;

CREATE FUNCTION coverage_bucket_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM coverage_bucket_recount(OLD.customer_id, OLD.rep_id, OLD.channel, OLD.occurred_at);
    IF TG_OP = 'UPDATE' THEN
        PERFORM coverage_bucket_recount(NEW.customer_id, NEW.rep_id, NEW.channel, NEW.occurred_at);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER coverage_bucket_follow AFTER UPDATE OF customer_id, rep_id, channel, occurred_at OR DELETE
    ON interaction FOR EACH ROW EXECUTE FUNCTION coverage_bucket_follow();
"""


def upgrade() -> None:
    op.create_table(
        'coverage_bucket',
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('rep_id', sa.Integer(), nullable=False),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('interactions', sa.Integer(), nullable=False),
        sa.Column('first_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id']),
        sa.ForeignKeyConstraint(['rep_id'], ['rep.id']),
        sa.PrimaryKeyConstraint('customer_id', 'rep_id', 'channel', 'month'),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'coverage_total',
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('rep_id', sa.Integer(), nullable=False),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('interactions', sa.Integer(), nullable=False),
        sa.Column('first_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id']),
        sa.ForeignKeyConstraint(['rep_id'], ['rep.id']),
        sa.PrimaryKeyConstraint('customer_id', 'rep_id', 'channel'),
        sqlite_with_rowid=False,
    )
    dialect = op.get_bind().dialect.name
    month = MONTH[dialect].format(at="occurred_at")
    op.execute(f"INSERT INTO coverage_bucket ({COLUMNS}) "
               f"SELECT customer_id, rep_id, channel, {month}, count(*), min(occurred_at), max(occurred_at) "
               f"FROM interaction GROUP BY customer_id, rep_id, channel, {month}")
    op.execute(FILL_TOTALS)
    if dialect == "postgresql":
        op.execute(POSTGRES_FUNCTIONS)
        return
    op.execute("CREATE TRIGGER coverage_bucket_follow_delete AFTER DELETE ON interaction BEGIN"
               f"{SQLITE_RECOUNT.format(row='OLD', columns=COLUMNS, total_columns=TOTAL_COLUMNS)}END")
    op.execute("CREATE TRIGGER coverage_bucket_follow_update "
               "AFTER UPDATE OF customer_id, rep_id, channel, occurred_at ON interaction BEGIN"
               f"{SQLITE_RECOUNT.format(row='OLD', columns=COLUMNS, total_columns=TOTAL_COLUMNS)}{SQLITE_RECOUNT.format(row='NEW', columns=COLUMNS, total_columns=TOTAL_COLUMNS)}"
               "END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER coverage_bucket_follow ON interaction")
        op.execute("DROP FUNCTION coverage_bucket_follow()")
        op.execute("DROP FUNCTION coverage_bucket_recount(INTEGER, INTEGER, VARCHAR, TIMESTAMP WITH TIME ZONE)")
    else:
        op.execute("DROP TRIGGER coverage_bucket_follow_delete")
        op.execute("DROP TRIGGER coverage_bucket_follow_update")
    op.drop_table('coverage_total')
    op.drop_table('coverage_bucket')

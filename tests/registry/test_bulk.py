"""Bulk inserts that skip existing rows, on every registry backend."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select

from registry.bulk import insert_ignoring, insert_returning
from registry.models import Customer, Message

WHEN = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=timezone.utc)


def message_row(key: str, subject: str = "Order") -> dict:
    return {"message_key": key, "occurred_at": WHEN, "subject": subject, "sender_email": "ann@acme.test",
            "noise_reason": "", "date_source": "header", "first_source_id": None}


def test_rows_that_exist_are_skipped_and_the_rest_stored(engine: Engine) -> None:
    with engine.begin() as db:
        insert_ignoring(db, Message.__table__, [message_row("<1@x>"), message_row("<2@x>")])
    with engine.begin() as db:
        insert_ignoring(db, Message.__table__, [message_row("<2@x>", "changed"), message_row("<3@x>")])
    with engine.connect() as db:
        stored = db.execute(select(Message.message_key, Message.subject).order_by(Message.message_key)).all()
    assert stored == [("<1@x>", "Order"), ("<2@x>", "Order"), ("<3@x>", "Order")]


def test_values_read_back_as_sqlalchemy_stores_them(engine: Engine) -> None:
    """A datetime or a boolean written here compares equal to one written by SQLAlchemy itself."""
    with engine.begin() as db:
        db.execute(Message.__table__.insert().values(message_row("<orm@x>")))
        insert_ignoring(db, Message.__table__, [message_row("<bulk@x>")])
        insert_ignoring(db, Customer.__table__, [{"key": "acme.test", "name": "Acme", "kind": "organisation",
                                                  "owner_reason": "", "pool": True, "status": "active", "locale": "",
                                                  "timezone": "", "created_at": WHEN}])
    with engine.connect() as db:
        same_moment = db.execute(select(Message.message_key).where(Message.occurred_at == WHEN)
                                 .order_by(Message.message_key)).scalars().all()
        customer = db.execute(select(Customer.pool, Customer.created_at).where(Customer.key == "acme.test")).one()
    assert same_moment == ["<bulk@x>", "<orm@x>"]
    assert customer.pool is True
    assert customer.created_at.replace(tzinfo=timezone.utc) == WHEN


def test_rows_given_as_tuples_return_what_was_new(engine: Engine) -> None:
    columns = ("message_key", "occurred_at", "subject", "sender_email", "noise_reason", "date_source")
    with engine.begin() as db:
        first = insert_returning(db, Message.__table__, columns, [
            ("<a@x>", WHEN, "A", "ann@acme.test", "", "header"), ("<b@x>", WHEN, "B", "ann@acme.test", "", "header"),
        ], ("message_key",), size=1)
        again = insert_returning(db, Message.__table__, columns, [
            ("<b@x>", WHEN, "changed", "ann@acme.test", "", "header"), ("<c@x>", WHEN, "C", "", "", "header"),
        ], ("message_key",))
    with engine.connect() as db:
        stored = db.execute(select(Message.message_key, Message.subject, Message.occurred_at)
                            .where(Message.occurred_at == WHEN).order_by(Message.message_key)).all()
    assert sorted(first) == [("<a@x>",), ("<b@x>",)]
    assert again == [("<c@x>",)]
    assert [(key, subject) for key, subject, _ in stored] == [("<a@x>", "A"), ("<b@x>", "B"), ("<c@x>", "C")]

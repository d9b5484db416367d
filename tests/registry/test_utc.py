"""Stored times read back as aware UTC datetimes, whatever SQLite text SQLAlchemy wrote or was
written there by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, create_engine, insert, select, text, type_coerce
from sqlalchemy.dialects import sqlite

from registry.models import Message
from registry.utc import UtcTime, sqlite_utc_text

_metadata = MetaData()
_times = Table("times", _metadata, Column("id", Integer, primary_key=True), Column("at", DateTime(timezone=True)))
_engine = create_engine("sqlite://")
_metadata.create_all(_engine)


def read_back(stored: datetime | str | None) -> datetime | None:
    with _engine.begin() as db:
        db.execute(_times.delete())
        if isinstance(stored, str):
            db.execute(text("INSERT INTO times (id, at) VALUES (1, :at)"), {"at": stored})
        else:
            db.execute(insert(_times), {"id": 1, "at": stored})
        return db.execute(select(type_coerce(_times.c.at, UtcTime))).scalar_one()


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)))
def test_every_time_written_by_sqlalchemy_reads_back_equal_and_in_utc(moment: datetime) -> None:
    found = read_back(moment)
    assert found == moment
    assert found is not None and found.tzinfo is timezone.utc


def test_text_written_by_hand_reads_as_utc_with_or_without_fraction_or_offset() -> None:
    expected = datetime(2026, 6, 30, 12, tzinfo=timezone.utc)
    assert read_back("2026-06-30 12:00:00") == expected
    assert read_back("2026-06-30 12:00:00.000000") == expected
    assert read_back("2026-06-30T12:00:00+00:00") == expected
    assert read_back(None) is None


@given(st.datetimes(timezones=st.timezones()))
def test_sqlite_text_of_a_utc_datetime_is_the_text_sqlalchemy_writes(moment: datetime) -> None:
    dialect = sqlite.dialect()
    sqlalchemys = Message.__table__.c.occurred_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert sqlite_utc_text(moment) == sqlalchemys(moment)


def test_a_datetime_without_a_timezone_is_refused_as_sqlalchemy_refuses_it() -> None:
    with pytest.raises(ValueError, match="timezone"):
        sqlite_utc_text(datetime(2026, 3, 2, 9, 30, 15, 123456))


def test_one_instant_is_written_as_the_same_utc_text_from_any_zone_after_it_was_written_once() -> None:
    utc_first = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=timezone.utc)
    same_in_new_york = utc_first.astimezone(timezone(timedelta(hours=-5)))
    assert sqlite_utc_text(utc_first) == sqlite_utc_text(same_in_new_york) == "2026-03-02 09:30:15.123456"
    assert sqlite_utc_text(same_in_new_york.replace(microsecond=0)) == "2026-03-02 09:30:15.000000"

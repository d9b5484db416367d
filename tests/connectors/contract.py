"""The promises every connector keeps, as a suite each kind's tests subclass.

A subclass says how to build a source of its kind holding some readable and some unreadable
items (`make`), one that cannot be reached (`unreachable`) and, when the kind has credentials,
one with wrong ones (`wrong_credentials`). The sync engine relies on nothing else: batches of
the kind's records, each with the cursor that resumes right after it.
"""

from __future__ import annotations

import json
import pickle
from itertools import islice
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from connectors.base import Connector
from connectors.errors import AuthError, ConnectorError
from connectors.records import (
    AddressBookEntry,
    Batch,
    DirectoryEvent,
    MessageHeaders,
    Record,
)
from tests.support.mail import conversation

BATCH_SIZE = 3
UNREADABLE_MAIL = b"Subject: a message nobody sent\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nHello\r\n"


def mails(items: int, unreadable: int = 0) -> list[bytes]:
    """`items` messages between a rep and customers, then `unreadable` ones without a sender."""
    return conversation("rep@acme.test", ["ann@client.test", "ben@buyer.test"], items, "c") + [UNREADABLE_MAIL] * unreadable


def key(record: Record) -> str:
    """What makes a record the same record when it is read again."""
    if isinstance(record, MessageHeaders):
        return record.message_id
    if isinstance(record, AddressBookEntry):
        return f"{record.book}/{record.entry_id}"
    assert isinstance(record, DirectoryEvent)
    return record.event_id


def keys(batches: list[Batch]) -> list[str]:
    return [key(record) for batch in batches for record in batch.records]


def reopened(connector: Connector[Any]) -> Connector[Any]:
    """The same source opened again, as the next sync (or a restarted process) opens it."""
    return type(connector)(connector.settings, connector.batch_size)


class ConnectorContract:
    """Subclass as `TestXContract` and implement the three builders below."""

    connector: ClassVar[type[Connector[Any]]]

    def make(self, items: int, unreadable: int = 0) -> Connector[Any]:
        """A new source of this kind holding `items` readable items, then `unreadable` ones, read
        `BATCH_SIZE` items per batch; the same `items` give the same records every time."""
        raise NotImplementedError

    def unreachable(self) -> Connector[Any]:
        """A source whose data cannot be reached: a missing path, a server that does not answer."""
        raise NotImplementedError

    def wrong_credentials(self) -> Connector[Any]:
        pytest.skip(f"a {self.connector.kind} source has no credentials")

    def test_records_come_in_batches_each_with_a_cursor_that_survives_json(self) -> None:
        batches = list(self.make(7).sync(None))

        records = [record for batch in batches for record in batch.records]
        assert len(records) == 7 and len(set(keys(batches))) == 7
        assert all(isinstance(record, self.connector.yields) for record in records)
        assert all(json.loads(json.dumps(batch.cursor)) == batch.cursor for batch in batches)

    def test_resuming_from_any_batch_cursor_reads_the_rest_exactly_once(self) -> None:
        reference = list(self.make(7).sync(None))
        for cut in range(1, len(reference) + 1):
            connector = self.make(7)
            stream = connector.sync(None)
            taken = list(islice(stream, cut))
            stream.close()  # type: ignore[attr-defined]

            rest = list(reopened(connector).sync(taken[-1].cursor))

            assert keys(taken) + keys(rest) == keys(reference), f"resumed after batch {cut}"

    def test_an_empty_source_yields_no_record_and_no_skip(self) -> None:
        batches = list(self.make(0).sync(None))

        assert keys(batches) == [] and [s for batch in batches for s in batch.skipped] == []

    def test_an_unchanged_source_yields_nothing_new(self) -> None:
        connector = self.make(4)
        cursor = list(connector.sync(None))[-1].cursor

        again = list(reopened(connector).sync(cursor))

        assert keys(again) == [] and [s for batch in again for s in batch.skipped] == []

    def test_an_unreadable_item_is_a_skip_among_the_records_not_a_failure(self) -> None:
        batches = list(self.make(4, unreadable=1).sync(None))

        skipped = [s for batch in batches for s in batch.skipped]
        assert len(keys(batches)) == 4 and len(skipped) == 1
        assert skipped[0].ref and skipped[0].reason

    def test_check_says_what_it_verified_and_fails_with_a_connector_error(self) -> None:
        assert self.connector.kind in self.make(1).check()
        with pytest.raises(ConnectorError):
            self.unreachable().check()
        with pytest.raises(ConnectorError):
            list(self.unreachable().sync(None))

    def test_wrong_credentials_are_an_auth_error(self) -> None:
        connector = self.wrong_credentials()
        with pytest.raises(AuthError):
            connector.check()
        with pytest.raises(AuthError):
            list(connector.sync(None))

    def test_settings_refuse_unknown_keys_and_travel_to_a_reader_process(self) -> None:
        settings = self.make(0).settings
        assert settings.kind == self.connector.kind
        with pytest.raises(ValidationError, match="Extra inputs"):
            self.connector.settings_model.model_validate(settings.model_dump() | {"bogus": 1})
        assert pickle.loads(pickle.dumps(settings)) == settings

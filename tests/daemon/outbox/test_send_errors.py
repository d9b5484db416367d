"""Permanent and transient send errors, each class answered by a real SMTP server (aiosmtpd).

A permanent one (an address the relay cannot take, a 5xx refusal of the recipient, the sender or
the message) fails the notification with the reason and is never tried again; a transient one (a
4xx, a line lost before DATA) goes back to pending with backoff and is sent once the relay recovers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from daemon.outbox.dispatch import Dispatcher
from daemon.outbox.transports.smtp import SmtpTransport
from registry.models import Notification, as_utc
from tests.daemon.outbox.test_outbox import UNPACED, Clock, smtp_config
from tests.servers.smtp import HANG_UP, SmtpServer
from tests.support.outbox import PLANNED_AT, Planned, plan_notifications

SENDER = "hello@company.example"
NON_ASCII = "müller@example.de"


@dataclass(frozen=True)
class Case:
    """How the relay answers the first attempt, and what that attempt must leave behind."""

    name: str
    answer: Callable[[SmtpServer, Planned], None]
    state: str
    reason: str
    transcript: Callable[[Planned], list[tuple[str, str]]]
    smtputf8: bool = True
    to_email: str = ""
    attempts: int = 1


def reply(command: str, text: str) -> Callable[[SmtpServer, Planned], None]:
    def arrange(server: SmtpServer, note: Planned) -> None:
        server.replies[(command, SENDER if command == "MAIL" else note.to_email)] = text
    return arrange


def nothing(server: SmtpServer, note: Planned) -> None:
    return None


def up_to_rcpt(note: Planned) -> list[tuple[str, str]]:
    return [("MAIL", SENDER), ("RCPT", note.to_email)]


def up_to_data(note: Planned) -> list[tuple[str, str]]:
    return [*up_to_rcpt(note), ("DATA", note.to_email)]


CASES = [
    Case("non-ASCII address, relay without SMTPUTF8", nothing, "failed", "does not offer SMTPUTF8",
         lambda note: [], smtputf8=False, to_email=NON_ASCII),
    Case("invalid address", nothing, "failed", "refused: To", lambda note: [], to_email="c@acme..example",
         attempts=0),
    Case("recipient refused 550", reply("RCPT", "550 5.1.1 No such user here"), "failed",
         "recipients refused", up_to_rcpt),
    Case("address syntax refused 553", reply("RCPT", "553 5.1.3 Bad recipient address syntax"), "failed",
         "553 5.1.3", up_to_rcpt),
    Case("sender refused 550", reply("MAIL", "550 5.7.60 Client does not have permissions to send as this sender"),
         "failed", f"sender {SENDER} refused: 550", lambda note: [("MAIL", SENDER)]),
    Case("message refused 554", reply("DATA", "554 5.6.0 Message rejected as spam"), "failed",
         "message refused at DATA: 554", up_to_data),
    Case("recipient deferred 451", reply("RCPT", "451 4.3.0 Try again later"), "pending", "451", up_to_rcpt),
    Case("sender deferred 421", reply("MAIL", "421 4.3.2 Service shutting down"), "pending", "421",
         lambda note: [("MAIL", SENDER)]),
    Case("message deferred 451", reply("DATA", "451 4.7.1 Greylisted"), "pending", "451", up_to_data),
    Case("line lost before DATA", reply("RCPT", HANG_UP), "pending", "broke", up_to_rcpt),
]


@pytest.fixture
def servers() -> Iterator[Callable[[bool], SmtpServer]]:
    started: list[SmtpServer] = []

    def start(smtputf8: bool) -> SmtpServer:
        server = SmtpServer(smtputf8=smtputf8)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def dispatch(engine: Engine, server: SmtpServer, clock: Clock) -> None:
    Dispatcher(engine, UNPACED, SmtpTransport(smtp_config(server)), clock=clock).run()


def notification(engine: Engine, note: Planned) -> Any:
    with engine.connect() as db:
        return db.execute(select(Notification.__table__).where(Notification.id == note.id)).one()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_class_of_send_error_fails_for_good_or_retries_with_backoff(
        engine: Engine, servers: Callable[[bool], SmtpServer], case: Case) -> None:
    [note] = plan_notifications(engine, 1, cc=())
    if case.to_email:
        with engine.begin() as db:
            db.execute(update(Notification).where(Notification.id == note.id).values(to_email=case.to_email))
        note = Planned(note.id, note.message_id, case.to_email, note.subject)
    server = servers(case.smtputf8)
    case.answer(server, note)
    clock = Clock(PLANNED_AT)

    dispatch(engine, server, clock)

    first = notification(engine, note)
    assert (first.state, first.attempts) == (case.state, case.attempts)
    assert case.reason in first.last_error
    assert server.transcript == case.transcript(note)
    assert server.received == []
    if case.state == "pending":
        assert as_utc(first.send_after) == PLANNED_AT + timedelta(seconds=UNPACED.retry_backoff_seconds)
    else:
        assert first.last_error.startswith(("permanent: ", "refused: "))

    server.replies.clear()
    clock.advance(hours=7)
    dispatch(engine, server, clock)

    later = notification(engine, note)
    if case.state == "failed":
        assert later.state == "failed" and later.attempts == first.attempts
        assert server.transcript == case.transcript(note), "a permanent failure was tried again"
        assert server.received == []
    else:
        assert (later.state, later.attempts) == ("sent", case.attempts + 1)
        assert server.message_ids() == [note.message_id]


def test_a_non_ascii_address_goes_out_through_a_relay_that_offers_smtputf8(
        engine: Engine, servers: Callable[[bool], SmtpServer]) -> None:
    [note] = plan_notifications(engine, 1, cc=())
    with engine.begin() as db:
        db.execute(update(Notification).where(Notification.id == note.id).values(to_email=NON_ASCII))
    server = servers(True)

    dispatch(engine, server, Clock(PLANNED_AT))

    assert notification(engine, note).state == "sent"
    [received] = server.received
    assert received.rcpt_tos == (NON_ASCII,)
    assert received.message["To"] == NON_ASCII

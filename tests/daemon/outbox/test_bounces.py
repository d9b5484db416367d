"""Delivery status notifications in the sending mailbox mark the customer's address bounced."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, select

from daemon.outbox.bounces import collect_bounces, handover_bounces, parse_report
from daemon.outbox.dispatch import Dispatcher
from registry.models import ContactPoint, Notification
from tests.daemon.outbox.test_outbox import UNPACED, Clock
from tests.daemon.outbox.test_outbox_in_doubt import transport_with_sent_folder
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import SmtpServer
from tests.support.outbox import COPY, PLANNED_AT, plan_notifications


def delivery_report(recipient: str, original_message_id: str, action: str = "failed",
                    quote: str = "text/rfc822-headers") -> bytes:
    """A DSN as a relay's MAILER-DAEMON writes it (RFC 3464), quoting the original headers."""
    return f"""\
From: Mail Delivery System <MAILER-DAEMON@mx.company.example>
To: hello@company.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{uuid.uuid4().hex}@mx.company.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.company.example
Arrival-Date: Mon, 2 Mar 2026 09:00:05 +0000

Original-Recipient: rfc822; {recipient.upper()}
Final-Recipient: rfc822; {recipient}
Action: {action}
Status: 5.1.1
Remote-MTA: dns; mx.customer.example
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address
    rejected: User unknown

--BOUNDARY
Content-Type: {quote}

{"" if quote == "text/rfc822-headers" else "MIME-Version: 1.0" + chr(10)}From: hello@company.example
To: {recipient}
Subject: Your new contact at Company
Message-ID: {original_message_id}
{"" if quote == "text/rfc822-headers" else chr(10) + "Dear customer," + chr(10)}
--BOUNDARY--
""".replace("\n", "\r\n").encode()


def test_a_report_names_the_failed_recipient_status_reason_and_original_message() -> None:
    [bounce] = parse_report(delivery_report("ann@acme.example", "<n1@company.example>", quote="message/rfc822"))

    assert bounce.recipient == "ann@acme.example"
    assert bounce.status == "5.1.1"
    assert bounce.reason == "smtp; 550 5.1.1 <ann@acme.example>: Recipient address rejected: User unknown"
    assert bounce.original_message_id == "<n1@company.example>"


def test_delays_and_ordinary_mail_are_not_bounces() -> None:
    assert parse_report(delivery_report("ann@acme.example", "<n1@company.example>", action="delayed")) == []
    assert parse_report(b"From: ann@acme.example\r\nSubject: thanks\r\n\r\nSee you.\r\n") == []


def test_bounces_in_the_sending_mailbox_mark_the_address_and_hold_its_next_message(
        engine: Engine, smtp_server: SmtpServer, dovecot: DovecotServer) -> None:
    first, kept = plan_notifications(engine, 2)
    transport = transport_with_sent_folder(smtp_server, dovecot)
    Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run()
    dovecot.append("outbox", "INBOX", [
        delivery_report(first.to_email, first.message_id),
        delivery_report(COPY, kept.message_id),
        delivery_report("stranger@elsewhere.example", "<not-ours@elsewhere.example>"),
    ])

    marked = collect_bounces(engine, transport.mailbox, "test")  # type: ignore[arg-type]
    again = collect_bounces(engine, transport.mailbox, "test")  # type: ignore[arg-type]

    assert (marked, again) == (1, 0)
    with engine.connect() as db:
        bounced = db.execute(select(ContactPoint.value, ContactPoint.bounce_reason)
                             .where(ContactPoint.bounced_at.is_not(None))).all()  # type: ignore[union-attr]
        handover_id = db.execute(select(Notification.handover_id).where(Notification.id == first.id)).scalar_one()
    assert [value for value, _ in bounced] == [first.to_email]
    assert bounced[0][1].startswith("5.1.1 smtp; 550 5.1.1")
    [reported] = handover_bounces(engine, handover_id)
    assert (reported.notification_id, reported.to_email) == (first.id, first.to_email)

    with engine.begin() as db:
        follow_up = dict(db.execute(select(Notification.__table__).where(Notification.id == first.id)).one()._mapping)
        follow_up.update(id=None, idempotency_key="follow-up", message_id_header="<follow-up@company.example>",
                         state="pending", step="follow-up", sent_at=None)
        del follow_up["id"]
        db.execute(Notification.__table__.insert().values(**follow_up))
    report = Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run()
    assert (report.held, report.sent) == (1, 0)

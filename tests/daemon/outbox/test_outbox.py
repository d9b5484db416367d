"""The outbox dispatcher sending planned notifications through a real SMTP server on loopback."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from config.policy import DispatchRules, QuietHours
from config.sections import SmtpConfig
from daemon.outbox.dispatch import Dispatcher, RunReport, outbox_summary
from daemon.outbox.transports.file import FileTransport
from daemon.outbox.transports.smtp import SmtpTransport
from registry.models import AuditEvent, Notification
from tests.servers.smtp import SmtpServer
from tests.support.outbox import COPY, PLANNED_AT, plan_notifications

UNPACED = DispatchRules(per_mailbox_per_hour=0, per_domain_per_hour=0, quiet_hours=None)


class Clock:
    """A clock the test moves by hand, so pacing is checked without waiting."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def smtp_config(server: SmtpServer, **changes: object) -> SmtpConfig:
    return SmtpConfig(**{"host": "127.0.0.1", "port": server.port, "security": "plain", **changes})


def dispatch(engine: Engine, server: SmtpServer, rules: DispatchRules = UNPACED,
             clock: Clock | None = None, limit: int | None = None) -> RunReport:
    transport = SmtpTransport(smtp_config(server))
    return Dispatcher(engine, rules, transport, clock=clock or Clock(PLANNED_AT)).run(limit)


def states(engine: Engine) -> dict[str, int]:
    return outbox_summary(engine).states


def test_each_due_notification_goes_out_once_with_its_headers_and_both_bodies(engine: Engine, smtp_server: SmtpServer) -> None:
    planned = plan_notifications(engine, 6, domains=("acme.example", "globex.example"))

    first = dispatch(engine, smtp_server)
    again = dispatch(engine, smtp_server)

    assert (first.sent, again.sent) == (6, 0)
    assert sorted(smtp_server.message_ids()) == sorted(p.message_id for p in planned)
    by_id = {r.message_id: r for r in smtp_server.received}
    for note in planned:
        received = by_id[note.message_id]
        message = received.message
        assert message["From"] == "hello@company.example"
        assert message["To"] == note.to_email
        assert message["Cc"] == COPY
        assert message["Subject"] == note.subject
        assert set(received.rcpt_tos) == {note.to_email, COPY}
        assert received.mail_from == "hello@company.example"
        assert "Sam now looks after your account." in message.get_body(("plain",)).get_content()
        assert "<p>Sam now looks after your account.</p>" in message.get_body(("html",)).get_content()
    assert states(engine) == {"sent": 6}
    with engine.connect() as db:
        actions = [a for (a,) in db.execute(select(AuditEvent.action).where(AuditEvent.entity == "notification"))]
    assert actions.count("notification.sending") == actions.count("notification.sent") == 6


def test_a_line_starting_with_from_reaches_the_customer_as_written(engine: Engine, smtp_server: SmtpServer) -> None:
    """An mbox-style generator would write ">From 7 July, Sam ..." into the customer's letter."""
    [note] = plan_notifications(engine, 1)
    body = "Dear Ann,\n\nFrom 7 July, Sam looks after you.\nFrom now on write to sam@company.example.\n"
    with engine.begin() as db:
        db.execute(update(Notification).values(body_text=body))

    dispatch(engine, smtp_server)

    [received] = smtp_server.received
    assert received.message.get_body(("plain",)).get_content().replace("\r\n", "\n") == body


def test_starttls_with_login_verifies_the_certificate(engine: Engine, smtp_tls_server: SmtpServer) -> None:
    planned = plan_notifications(engine, 2)
    untrusted = SmtpTransport(smtp_config(smtp_tls_server, security="starttls", username="sender", password="s3cret"))

    refused = Dispatcher(engine, UNPACED, untrusted, clock=Clock(PLANNED_AT)).run()

    assert "certificate not trusted" in refused.error and refused.sent == 0
    assert states(engine) == {"pending": 2}
    with engine.connect() as db:
        assert {a for (a,) in db.execute(select(Notification.attempts))} == {0}

    trusted = SmtpTransport(smtp_config(smtp_tls_server, security="starttls", username="sender",
                                        password="s3cret", ca_file=smtp_tls_server.ca_file))
    report = Dispatcher(engine, UNPACED, trusted, clock=Clock(PLANNED_AT)).run()

    assert report.sent == 2 and not report.error
    assert sorted(smtp_tls_server.message_ids()) == sorted(p.message_id for p in planned)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the whole session is TLS
def test_implicit_tls_with_login(engine: Engine, smtp_implicit_tls_server: SmtpServer) -> None:
    planned = plan_notifications(engine, 2)
    transport = SmtpTransport(smtp_config(smtp_implicit_tls_server, security="tls", username="sender",
                                          password="s3cret", ca_file=smtp_implicit_tls_server.ca_file))

    report = Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run()

    assert report.sent == 2 and not report.error
    assert sorted(smtp_implicit_tls_server.message_ids()) == sorted(p.message_id for p in planned)


def test_wrong_password_stops_the_run_without_using_up_attempts(engine: Engine, smtp_tls_server: SmtpServer) -> None:
    plan_notifications(engine, 3)
    transport = SmtpTransport(smtp_config(smtp_tls_server, security="starttls", username="sender",
                                          password="wrong-password", ca_file=smtp_tls_server.ca_file))

    report = Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run()

    assert "login as sender refused" in report.error and "wrong-password" not in report.error
    assert states(engine) == {"pending": 3}


def test_rate_limit_per_recipient_domain_over_a_rolling_hour(engine: Engine, smtp_server: SmtpServer) -> None:
    plan_notifications(engine, 9, domains=("acme.example", "globex.example", "initech.example"))
    rules = UNPACED.model_copy(update={"per_domain_per_hour": 2})
    clock = Clock(PLANNED_AT)

    first = dispatch(engine, smtp_server, rules, clock)
    clock.advance(minutes=59)
    within_the_hour = dispatch(engine, smtp_server, rules, clock)
    clock.advance(minutes=2)
    next_hour = dispatch(engine, smtp_server, rules, clock)

    assert (first.sent, first.rate_limited) == (6, 3)
    assert within_the_hour.sent == 0
    assert next_hour.sent == 3
    domains = [r.rcpt_tos[0].rpartition("@")[2] for r in smtp_server.received]
    assert all(domains[:6].count(d) == 2 for d in set(domains))


def test_rate_limit_per_sending_mailbox(engine: Engine, smtp_server: SmtpServer) -> None:
    plan_notifications(engine, 4, sender="hello@company.example", domains=("a.example", "b.example"))
    plan_notifications(engine, 4, sender="sam.successor@company.example", domains=("c.example", "d.example"))
    rules = UNPACED.model_copy(update={"per_mailbox_per_hour": 3})

    report = dispatch(engine, smtp_server, rules)

    senders = [r.mail_from for r in smtp_server.received]
    assert report.sent == 6 and report.rate_limited == 2
    assert senders.count("hello@company.example") == senders.count("sam.successor@company.example") == 3


def test_quiet_hours_follow_the_recipients_time_zone(engine: Engine, smtp_server: SmtpServer) -> None:
    plan_notifications(engine, 2, contact_timezone="Asia/Shanghai")
    plan_notifications(engine, 1, contact_timezone="")
    rules = UNPACED.model_copy(update={"quiet_hours": QuietHours(start="20:00", end="08:00")})
    shanghai_night = Clock(datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc))
    shanghai_morning = Clock(datetime(2026, 3, 3, 0, 30, tzinfo=timezone.utc))

    night = dispatch(engine, smtp_server, rules, shanghai_night)
    morning = dispatch(engine, smtp_server, rules, shanghai_morning)

    assert (night.sent, night.quiet_hours) == (1, 2)
    assert (morning.sent, morning.quiet_hours) == (2, 0)


def test_per_run_cap_from_the_policy_and_from_the_caller(engine: Engine, smtp_server: SmtpServer) -> None:
    plan_notifications(engine, 10)
    rules = UNPACED.model_copy(update={"max_per_run": 4})

    capped = dispatch(engine, smtp_server, rules)
    lower = dispatch(engine, smtp_server, rules, limit=2)
    higher_than_policy = dispatch(engine, smtp_server, rules, limit=50)

    assert (capped.sent, capped.capped) == (4, True)
    assert lower.sent == 2
    assert higher_than_policy.sent == 4
    assert len(smtp_server.received) == 10


def test_only_due_rows_of_handovers_cleared_to_send_go_out(engine: Engine, smtp_server: SmtpServer) -> None:
    due = plan_notifications(engine, 1)
    plan_notifications(engine, 1, send_after=PLANNED_AT + timedelta(days=2))
    plan_notifications(engine, 1, handover_status="planned")
    plan_notifications(engine, 1, handover_status="cancelled")

    report = dispatch(engine, smtp_server)

    assert report.sent == 1
    assert smtp_server.message_ids() == [due[0].message_id]


def test_header_injection_in_a_row_is_refused_not_sent(engine: Engine, smtp_server: SmtpServer) -> None:
    bad_subject, bad_address, good = plan_notifications(engine, 3)
    with engine.begin() as db:
        db.execute(update(Notification).where(Notification.id == bad_subject.id)
                   .values(subject="Hello\r\nBcc: everyone@rival.example"))
        db.execute(update(Notification).where(Notification.id == bad_address.id)
                   .values(to_email="c@acme.example\nBcc: everyone@rival.example"))

    report = dispatch(engine, smtp_server)

    assert (report.sent, report.refused) == (1, 2)
    assert smtp_server.message_ids() == [good.message_id]
    refused = {a.notification_id: a.reason for a in outbox_summary(engine).attention}
    assert refused[bad_subject.id].startswith("refused: Subject")
    assert refused[bad_address.id].startswith("refused: To")
    assert all("rival" not in r.raw.decode() for r in smtp_server.received)


def test_a_refused_recipient_fails_at_once_and_a_deferral_retries_with_backoff(engine: Engine, smtp_server: SmtpServer) -> None:
    refused, deferred, fine = plan_notifications(engine, 3)
    smtp_server.refuse.add(refused.to_email)
    smtp_server.defer.add(deferred.to_email)
    rules = UNPACED.model_copy(update={"max_attempts": 3, "retry_backoff_seconds": 60})
    clock = Clock(PLANNED_AT)

    first = dispatch(engine, smtp_server, rules, clock)
    clock.advance(seconds=59)
    too_early = dispatch(engine, smtp_server, rules, clock)
    clock.advance(seconds=1)
    second = dispatch(engine, smtp_server, rules, clock)
    clock.advance(seconds=120)
    third = dispatch(engine, smtp_server, rules, clock)

    assert (first.sent, first.failed, first.retrying) == (1, 1, 1)
    assert (too_early.sent, too_early.retrying) == (0, 0)
    assert (second.retrying, third.failed) == (1, 1)
    reached_addressee = [r.message_id for r in smtp_server.received if r.message["To"] in r.rcpt_tos]
    assert reached_addressee == [fine.message_id]
    attention = {a.notification_id: a for a in outbox_summary(engine).attention}
    assert "550" in attention[refused.id].reason and attention[refused.id].state == "failed"
    assert "451" in attention[deferred.id].reason and attention[deferred.id].state == "failed"
    with engine.connect() as db:
        assert db.execute(select(Notification.attempts).where(Notification.id == deferred.id)).scalar() == 3


def test_a_retry_after_a_deferral_reaches_only_those_the_first_attempt_did_not(
    engine: Engine, smtp_server: SmtpServer
) -> None:
    """The relay takes the successor's copy but defers the customer: the retry must not copy the
    successor a second time."""
    [planned] = plan_notifications(engine, 1)
    smtp_server.defer.add(planned.to_email)
    clock = Clock(PLANNED_AT)

    first = dispatch(engine, smtp_server, clock=clock)
    smtp_server.defer.clear()
    clock.advance(hours=1)
    second = dispatch(engine, smtp_server, clock=clock)

    assert (first.retrying, second.sent) == (1, 1)
    envelopes = [r.rcpt_tos for r in smtp_server.received if r.message_id == planned.message_id]
    assert envelopes == [(COPY,), (planned.to_email,)]
    with engine.connect() as db:
        assert db.execute(select(Notification.delivered_to).where(Notification.id == planned.id)).scalar() == [COPY]


def test_dry_run_writes_each_pending_message_as_eml_and_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    planned = plan_notifications(engine, 3, send_after=PLANNED_AT + timedelta(days=3))
    folder = tmp_path / "review"

    written = Dispatcher(engine, UNPACED, FileTransport(folder), clock=Clock(PLANNED_AT)).preview(100)

    files = sorted(folder.glob("*.eml"))
    assert written == 3 and len(files) == 3
    parsed = {str(m["Message-ID"]): m for m in (message_from_bytes(f.read_bytes(), policy=default) for f in files)}
    assert set(parsed) == {p.message_id for p in planned}
    assert all(parsed[p.message_id]["To"] == p.to_email for p in planned)
    assert states(engine) == {"pending": 3}


def test_plain_text_smtp_is_refused_for_a_server_off_this_machine(engine: Engine) -> None:
    plan_notifications(engine, 1)
    remote = SmtpTransport(SmtpConfig(host="smtp.example.com", security="plain", username="u", password="p"))

    report = Dispatcher(engine, UNPACED, remote, clock=Clock(PLANNED_AT)).run()

    assert "allowed only for a loopback host" in report.error
    assert states(engine) == {"pending": 1}

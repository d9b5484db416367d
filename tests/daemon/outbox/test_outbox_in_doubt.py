"""Sends a crash left in `sending` are settled before any retry: looked up in Sent, or held."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, select, update

from config.sections import SentFolderConfig, SmtpConfig
from daemon.outbox.compose import compose
from daemon.outbox.dispatch import Dispatcher, letter_for, outbox_summary
from daemon.outbox.transports.mailbox import PENDING
from daemon.outbox.transports.smtp import SmtpTransport
from registry.models import AuditEvent, Notification
from tests.daemon.outbox.test_outbox import UNPACED, Clock, dispatch
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import FilingRelay, SmtpServer
from tests.support.outbox import PLANNED_AT, Planned, plan_notifications


def dead_process_owner() -> str:
    """A lease owner naming a process on this host that has exited, as after SIGKILL."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return f"{socket.gethostname()}:{finished.pid}"


def interrupted(engine: Engine, note: Planned) -> None:
    """Leave the row as a crash between 'sending' and 'sent' would."""
    with engine.begin() as db:
        db.execute(update(Notification).where(Notification.id == note.id).values(
            state="sending", attempts=Notification.attempts + 1, lease_owner=dead_process_owner(),
            lease_until=PLANNED_AT + timedelta(minutes=10)))


def transport_with_sent_folder(smtp: SmtpServer, dovecot: DovecotServer) -> SmtpTransport:
    dovecot.add_user("outbox", "outbox-secret")
    sent_folder = SentFolderConfig(host="127.0.0.1", port=dovecot.port, security="plain",
                                   username=dovecot.login("outbox"), password="outbox-secret", folder="Sent")
    return SmtpTransport(SmtpConfig(host="127.0.0.1", port=smtp.port, security="plain", sent_folder=sent_folder))


def transport_with_relay_filing(relay: FilingRelay, wait_seconds: float) -> SmtpTransport:
    sent_folder = SentFolderConfig(host="127.0.0.1", port=relay.dovecot.port, security="plain",
                                   username=relay.dovecot.login(relay.user), password=relay.dovecot.users[relay.user],
                                   folder=relay.folder,
                                   filed_by="relay", relay_copy_wait_seconds=wait_seconds)
    return SmtpTransport(SmtpConfig(host="127.0.0.1", port=relay.port, security="plain", sent_folder=sent_folder))


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_without_a_sent_folder_an_interrupted_send_is_held_for_a_human(engine: Engine, smtp_server: SmtpServer) -> None:
    in_doubt, other = plan_notifications(engine, 2)
    interrupted(engine, in_doubt)

    report = dispatch(engine, smtp_server)

    assert (report.in_doubt, report.held, report.sent) == (1, 1, 1)
    assert smtp_server.message_ids() == [other.message_id]
    [held] = outbox_summary(engine).attention
    assert (held.notification_id, held.state) == (in_doubt.id, "held")
    assert "cannot tell whether it went out" in held.reason


def test_the_resend_policy_sends_an_interrupted_message_again(engine: Engine, smtp_server: SmtpServer) -> None:
    [in_doubt] = plan_notifications(engine, 1)
    interrupted(engine, in_doubt)

    report = dispatch(engine, smtp_server, UNPACED.model_copy(update={"in_doubt": "resend"}))

    assert (report.requeued, report.sent) == (1, 1)
    assert smtp_server.message_ids() == [in_doubt.message_id]


def test_a_send_still_leased_by_a_live_process_is_left_alone(engine: Engine, smtp_server: SmtpServer) -> None:
    [busy] = plan_notifications(engine, 1)
    with engine.begin() as db:
        db.execute(update(Notification).where(Notification.id == busy.id).values(
            state="sending", lease_owner="other-host:4242", lease_until=PLANNED_AT + timedelta(minutes=10)))

    report = dispatch(engine, smtp_server)

    assert (report.in_doubt, report.held, report.sent) == (0, 0, 0)
    assert outbox_summary(engine).states == {"sending": 1}


def test_the_sent_folder_tells_sent_from_unsent_and_holds_only_what_was_mid_transaction(
        engine: Engine, smtp_server: SmtpServer, dovecot: DovecotServer) -> None:
    after_send, before_send, mid_send = plan_notifications(engine, 3)
    transport = transport_with_sent_folder(smtp_server, dovecot)
    first = Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run(limit=1)
    assert first.sent == 1 and smtp_server.message_ids() == [after_send.message_id]
    with engine.connect() as db:
        row = db.execute(select(Notification.__table__).where(Notification.id == mid_send.id)).one()
    transport.mailbox.file_pending(compose(letter_for(row), PLANNED_AT))  # type: ignore[union-attr]
    for note in (after_send, before_send, mid_send):
        interrupted(engine, note)

    report = Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run()

    assert (report.in_doubt, report.found_sent, report.requeued, report.held) == (3, 1, 1, 1)
    assert sorted(smtp_server.message_ids()) == sorted([after_send.message_id, before_send.message_id])
    assert {a.notification_id for a in outbox_summary(engine).attention} == {mid_send.id}
    with dovecot.client("outbox") as imap:
        imap.select_folder("Sent")
        flags = imap.get_flags(imap.search(["ALL"]))
    assert sorted(PENDING.encode() in f for f in flags.values()) == [False, False, True]
    with engine.connect() as db:
        resolved = db.execute(select(AuditEvent.detail).where(AuditEvent.action == "notification.sent",
                                                              AuditEvent.entity_id == str(after_send.id))).scalars().all()
    assert {"resolved": "found in the sending mailbox"} in resolved



def test_a_line_dropped_after_the_message_data_leaves_the_send_in_doubt_not_retried(
        engine: Engine, smtp_server: SmtpServer) -> None:
    dropped, other = plan_notifications(engine, 2)
    smtp_server.hang_up_after_data.add(dropped.to_email)

    first = dispatch(engine, smtp_server)
    second = dispatch(engine, smtp_server)

    assert (first.in_doubt, first.sent, first.retrying) == (1, 1, 0)
    assert (second.in_doubt, second.held) == (1, 1)
    assert sorted(smtp_server.message_ids()) == sorted([dropped.message_id, other.message_id])


def test_where_the_relay_files_the_copy_custody_files_nothing_and_settles_every_send_left_in_doubt(
        engine: Engine, filing_relay: FilingRelay) -> None:
    """One send the relay took just before the crash (its copy shows up a second later), one it never got."""
    filing_relay.delay = 1.0
    taken, never = plan_notifications(engine, 2)
    transport = transport_with_relay_filing(filing_relay, wait_seconds=4.0)
    with engine.connect() as db:
        row = db.execute(select(Notification.__table__).where(Notification.id == taken.id)).one()
    transport.send(compose(letter_for(row), PLANNED_AT))
    for note in (taken, never):
        interrupted(engine, note)

    report = Dispatcher(engine, UNPACED, transport, clock=Clock(PLANNED_AT)).run()

    assert (report.in_doubt, report.found_sent, report.requeued, report.held, report.sent) == (2, 1, 1, 0, 1)
    assert sorted(filing_relay.message_ids()) == sorted([taken.message_id, never.message_id])
    assert outbox_summary(engine).states == {"sent": 2}
    wait_until(lambda: filing_relay.copies_filed == 2)
    assert sorted(filing_relay.filed()) == sorted([taken.message_id, never.message_id])

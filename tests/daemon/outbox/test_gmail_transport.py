"""Letters through the Gmail API's messages.send, against the fake Workspace through real google-auth and requests.

Each letter is sent once as the sending user, keeps custody's Message-ID and headers, and a send left in
doubt is found again in that user's sent mail, whether Gmail kept the Message-ID or replaced it.
"""

from __future__ import annotations

from collections import Counter
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from config.sections import GmailSendConfig
from config.settings import Settings
from connectors.google.settings import SEND_SCOPE
from daemon.outbox.dispatch import outbox_summary
from daemon.outbox.transports import build_transport
from daemon.outbox.transports.base import TransportError
from daemon.outbox.transports.gmail import GmailTransport
from registry.store import open_registry
from tests.daemon.outbox.test_outbox_crash import POLICY
from tests.servers.google import Workspace
from tests.support.crash import kill_once_accepted, outbox_config, run_to_the_end
from tests.support.forks import CustodyForks
from tests.support.google import key_file, workspace_app
from tests.support.outbox import COPY, CUSTOMER, letter, plan_notifications

SENDER = "hello@company.example"
MESSAGE_ID = "<handover-1-0@company.example>"
SEND_PATH = "/gmail/v1/users/me/messages/send"


def gmail_transport(workspace: Workspace, folder: Path, **fields: Any) -> GmailTransport:
    return GmailTransport(GmailSendConfig(**(workspace_app(workspace, folder) | fields)))


def sent_messages(workspace: Workspace) -> list[EmailMessage]:
    return [parsed(entry["raw"]) for entry in workspace.sent]


def parsed(raw: bytes) -> EmailMessage:
    message: EmailMessage = message_from_bytes(raw, policy=default)  # type: ignore[assignment]
    return message


def custody_id(message: EmailMessage) -> str:
    """The Message-ID custody gave the letter, also where Gmail replaced it."""
    return str(message["X-Google-Original-Message-ID"] or message["Message-ID"])


def sends(workspace: Workspace, user: str = SENDER) -> int:
    return workspace.requests[user].count(("POST", SEND_PATH))


def test_a_gmail_send_section_makes_the_outbox_send_through_gmail(google_workspace: Workspace, tmp_path: Path) -> None:
    settings = Settings(gmail_send=GmailSendConfig(**workspace_app(google_workspace, tmp_path)))

    assert isinstance(build_transport(settings), GmailTransport)


def test_a_letter_is_delivered_once_with_its_recipients_subject_and_message_id(
        google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER, "Company")
    transport = gmail_transport(google_workspace, tmp_path)

    transport.send(letter())

    [sent] = sent_messages(google_workspace)
    assert (str(sent["To"]), str(sent["Cc"]), str(sent["Subject"])) == (CUSTOMER, COPY, "Your new contact at Company")
    assert (sent["Message-ID"], sent["X-Custody-Notification"], str(sent["From"])) == (MESSAGE_ID, "1", f"Company <{SENDER}>")
    assert sent.get_body(("html",)).get_content().rstrip() == "<p>Dear Ana,</p><p>Sam now looks after your account.</p>"
    assert sent["X-Custody-Message-ID"] == MESSAGE_ID
    assert [m["labelIds"] for m in google_workspace.messages(SENDER)] == [["SENT"]]
    transport.close()


def test_recipients_an_earlier_attempt_reached_are_left_out(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER)
    transport = gmail_transport(google_workspace, tmp_path)

    transport.send(letter(), already=[COPY.upper()])

    [sent] = sent_messages(google_workspace)
    assert (str(sent["To"]), sent["Cc"], sent["Message-ID"]) == (CUSTOMER, None, MESSAGE_ID)


def test_a_shared_mailbox_sends_every_letter_and_is_where_they_are_looked_up(
        google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user("outbox@company.example")
    transport = gmail_transport(google_workspace, tmp_path, mailbox="outbox@company.example")

    transport.send(letter(sender="sam.successor@company.example"))

    [sent] = google_workspace.sent
    assert sent["user"] == "outbox@company.example"
    assert str(parsed(sent["raw"])["From"]) == "Company <sam.successor@company.example>"
    assert transport.find_sent(MESSAGE_ID, "sam.successor@company.example") is True


def test_the_sent_mail_tells_a_sent_letter_from_one_never_sent(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER)
    transport = gmail_transport(google_workspace, tmp_path, sent_copy_wait_seconds=0.2)
    transport.send(letter("<it's-sent@company.example>"))

    assert transport.find_sent("<it's-sent@company.example>", SENDER) is True
    assert transport.find_sent("<never-sent@company.example>", SENDER) is False


def test_a_letter_gmail_has_not_indexed_yet_is_still_found(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER)
    google_workspace.search_delay_seconds = 1.5
    transport = gmail_transport(google_workspace, tmp_path, sent_copy_wait_seconds=10)
    transport.send(letter())

    assert transport.find_sent(MESSAGE_ID, SENDER) is True


def test_a_letter_whose_message_id_gmail_replaced_is_found_by_its_headers(
        google_workspace: Workspace, tmp_path: Path) -> None:
    """Search finds only Gmail's own id then; the newest sent messages are compared by their headers."""
    google_workspace.add_user(SENDER)
    google_workspace.replace_message_ids = True
    transport = gmail_transport(google_workspace, tmp_path, sent_copy_wait_seconds=0.2)
    for n in range(3):
        transport.send(letter(f"<handover-1-{n}@company.example>"))
    transport.close()

    [replaced, *_] = sent_messages(google_workspace)
    assert replaced["Message-ID"] != MESSAGE_ID and custody_id(replaced) == MESSAGE_ID
    assert transport.find_sent(MESSAGE_ID, SENDER) is True
    assert transport.find_sent("<never-sent@company.example>", SENDER) is False
    metadata_reads = [path for method, path in google_workspace.requests[SENDER] if method == "GET" and path.count("/") == 6]
    assert len(metadata_reads) == 3, "each sent message's headers are read once per run"


def test_a_rate_limit_burst_is_waited_out_and_the_letter_sent_once(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER)
    google_workspace.throttle(SENDER, 2)
    transport = gmail_transport(google_workspace, tmp_path)

    transport.send(letter())

    assert (sends(google_workspace), len(google_workspace.sent)) == (3, 1)


def test_a_send_whose_connection_drops_unanswered_is_in_doubt_and_not_repeated(
        google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER)
    google_workspace.crash_after_send(SENDER)
    transport = gmail_transport(google_workspace, tmp_path)

    with pytest.raises(TransportError) as raised:
        transport.send(letter())

    assert (raised.value.in_doubt, raised.value.permanent, raised.value.unreachable) == (True, False, False)
    assert (sends(google_workspace), len(google_workspace.sent)) == (1, 1)
    assert transport.find_sent(MESSAGE_ID, SENDER) is True


def test_without_gmail_send_delegated_nothing_can_be_sent_and_the_error_names_the_scope(
        google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(SENDER)
    google_workspace.undelegate(SEND_SCOPE)
    transport = gmail_transport(google_workspace, tmp_path)

    with pytest.raises(TransportError) as raised:
        transport.send(letter())

    assert (raised.value.unreachable, raised.value.in_doubt) == (True, False)
    assert SEND_SCOPE in str(raised.value) and google_workspace.service_account_info["client_id"] in str(raised.value)
    assert google_workspace.sent == []


def test_a_letter_gmail_refuses_fails_for_good(google_workspace: Workspace, tmp_path: Path) -> None:
    """Here every recipient was reached before, so Gmail has none to send to (400)."""
    google_workspace.add_user(SENDER)
    transport = gmail_transport(google_workspace, tmp_path)

    with pytest.raises(TransportError) as raised:
        transport.send(letter(), already=[CUSTOMER, COPY])

    assert (raised.value.permanent, raised.value.unreachable, raised.value.in_doubt) == (True, False, False)


def gmail_config(folder: Path, registry: str, workspace: Workspace) -> Path:
    """A config sending through the fake Workspace, the service account key in a file as an admin deploys it."""
    return outbox_config(folder, registry, POLICY, f"""\
[gmail_send]
key_file = "{key_file(workspace, folder)}"
token_uri = "{workspace.server.base_url}/token"
api_endpoint = "{workspace.server.base_url}"
retry_wait_seconds = 0.05
sent_copy_wait_seconds = 2
""")


@pytest.mark.parametrize("replace_message_ids", [False, True], ids=["id-kept", "id-replaced"])
def test_a_dispatcher_killed_after_gmail_took_a_letter_settles_it_by_the_lookup(
        google_workspace: Workspace, tmp_path: Path, custody_forks: CustodyForks, replace_message_ids: bool) -> None:
    """`custody outbox run` is SIGKILLed once Gmail has sent its first letter, before custody recorded the
    send: the restart finds the letter in the sender's sent mail and sends the rest, each exactly once."""
    google_workspace.add_user(SENDER)
    google_workspace.replace_message_ids = replace_message_ids
    registry = tmp_path / "registry.db"
    engine = open_registry(f"sqlite:///{registry}")
    planned = plan_notifications(engine, 3, sender=SENDER)
    config = gmail_config(tmp_path, f"sqlite:///{registry}", google_workspace)
    google_workspace.latency_seconds = 0.5

    kill_once_accepted(custody_forks, config, registry, lambda: sends(google_workspace) == 1,
                       lambda: len(google_workspace.sent) == 1)
    google_workspace.latency_seconds = 0.0
    assert outbox_summary(engine).states == {"sending": 1, "pending": 2}

    report = run_to_the_end(custody_forks, config)

    assert (report["in_doubt"], report["found_sent"], report["sent"], report["held"]) == (1, 1, 2, 0)
    assert Counter(custody_id(m) for m in sent_messages(google_workspace)) == {p.message_id: 1 for p in planned}
    assert outbox_summary(engine).states == {"sent": 3}
    engine.dispose()

"""Syncing company mailboxes from a real Dovecot: folder choice, increments, resets and failures."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select

from config.policy import Policy
from config.settings import Settings
from connectors.errors import AuthError, PermanentError, TransientError
from connectors.google.settings import IMAP_SCOPE, GoogleApp
from connectors.graph.settings import MicrosoftApp
from connectors.imap import (
    MAX_COMMAND_BYTES,
    PROTOCOL_LOGGER,
    Fetched,
    ImapConnector,
    ImapSettings,
    fetched_headers,
    open_connection,
    parse_fetched,
    uid_chunks,
)
from connectors.maildir import MaildirSettings
from connectors.records import Batch, MessageHeaders
from daemon.sync.engine import SyncReport, sync_source
from registry.models import ContactPoint, Interaction, Message, Rep, Source, SyncIssue
from registry.store import open_registry
from tests.connectors.contract import BATCH_SIZE, ConnectorContract, mails
from tests.servers.dovecot import DovecotServer, free_port
from tests.servers.tokeninfo import TokenInfoServer
from tests.support.damaged_mail import damaged_messages
from tests.support.google import workspace_app
from tests.support.graph import tenant_app
from tests.support.mail import conversation, message, write_maildir

PROJECT = Path(__file__).resolve().parents[2]
POLICY = Policy(company_domains=["acme.test"])
CUSTOMERS = ["ann@client.test", "ben@buyer.test", "cy@gmail.com"]
QUICK_RETRIES = {"retry_attempts": 2, "retry_wait_seconds": 0.05}


def imap_source(server: DovecotServer, user: str, **changes: Any) -> ImapSettings:
    fields: dict[str, Any] = {
        "name": f"{user}-imap", "kind": "imap", "owner": f"{user}@acme.test", "host": "127.0.0.1",
        "port": server.port, "security": "plain", "username": server.login(user), "password": server.users[user],
        **QUICK_RETRIES,
    }
    return ImapSettings(**(fields | changes))


def fill(server: DovecotServer, user: str, folders: dict[str, list[bytes]]) -> None:
    server.add_user(user, f"secret-of-{user}")
    for folder, messages in folders.items():
        server.append(user, folder, messages)


def rep_mailboxes() -> dict[str, dict[str, list[bytes]]]:
    """Three reps; alice and bob both received the customer's mail copied to the two of them."""
    shared = message("ann@client.test", "alice@acme.test", cc="bob@acme.test", message_id="<shared@client.test>")
    return {
        rep: {
            "INBOX": conversation(f"{rep}@acme.test", CUSTOMERS, 25, f"{rep}-in") + ([shared] if rep != "carol" else []),
            "Sent": conversation(f"{rep}@acme.test", CUSTOMERS[::-1], 12, f"{rep}-out"),
            "Junk": [message("win@lottery.test", f"{rep}@acme.test", message_id=f"<junk-{rep}@lottery.test>")],
        }
        for rep in ("alice", "bob", "carol")
    }


def read(connector: ImapConnector, cursor: dict[str, Any] | None = None) -> tuple[list[MessageHeaders], dict[str, Any] | None]:
    batches: list[Batch] = list(connector.sync(cursor))
    records = [record for batch in batches for record in batch.records]
    return records, (batches[-1].cursor if batches else cursor)  # type: ignore[return-value]


def sync(engine: Engine, source: ImapSettings | MaildirSettings, batch_size: int = 500, **options: Any) -> SyncReport:
    settings = Settings(batch_size=batch_size, sources=[source])
    return sync_source(engine, settings, POLICY, source, **options)


def contents(engine: Engine) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Messages and interactions as comparable rows, independent of row ids and of the backend."""
    with engine.connect() as db:
        messages = db.execute(select(
            Message.message_key, Message.occurred_at, Message.subject, Message.sender_email, Message.noise_reason)).all()
        interactions = db.execute(
            select(Message.message_key, Rep.email, ContactPoint.value, Interaction.direction, Interaction.channel)
            .select_from(Interaction).join(Message, Message.id == Interaction.message_id)
            .join(Rep, Rep.id == Interaction.rep_id).join(ContactPoint, ContactPoint.id == Interaction.contact_point_id)
        ).all()
    as_utc = [(key, when.replace(tzinfo=when.tzinfo or timezone.utc).astimezone(timezone.utc), *rest)
              for key, when, *rest in messages]
    return sorted(as_utc), sorted(tuple(row) for row in interactions)


def uninterrupted(tmp_path: Path, source: ImapSettings) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    engine = open_registry(f"sqlite:///{tmp_path / 'uninterrupted.db'}")
    assert sync(engine, source).ok
    return contents(engine)


def source_row(engine: Engine, source: ImapSettings) -> Any:
    with engine.connect() as db:
        return db.execute(select(Source).where(Source.name == source.name)).one()


def test_full_sync_of_several_mailboxes_equals_the_maildir_sync(dovecot: DovecotServer, engine: Engine, tmp_path: Path) -> None:
    maildir_registry = open_registry(f"sqlite:///{tmp_path / 'maildir.db'}")
    for rep, folders in rep_mailboxes().items():
        fill(dovecot, rep, folders)
        maildir = MaildirSettings(name=f"{rep}-maildir", owner=f"{rep}@acme.test",
                                  path=write_maildir(tmp_path / rep, folders))
        assert sync(engine, imap_source(dovecot, rep), batch_size=10).ok
        assert sync(maildir_registry, maildir).ok
    messages, interactions = contents(engine)
    assert len(messages) == 3 * (25 + 12) + 1
    assert not [m for m in messages if m[0].startswith("junk-")]
    assert (messages, interactions) == contents(maildir_registry)


def test_enron_mailbox_over_imap_equals_its_maildir(dovecot: DovecotServer, enron: Path, tmp_path: Path) -> None:
    folders = {"inbox": "INBOX", "sent": "Sent", "_sent_mail": "_sent_mail", "sent_items": "sent_items"}
    dovecot.add_user("allen-p", "secret-of-allen")
    for name, imap_name in folders.items():
        files = sorted((enron / "allen-p" / name).iterdir())
        dovecot.append("allen-p", imap_name, (path.read_bytes() for path in files))
    policy = Policy(company_domains=["enron.com"])
    imap = imap_source(dovecot, "allen-p", owner="phillip.allen@enron.com", folders=["_sent_mail", "sent_items"])
    maildir = MaildirSettings(name="allen-maildir", owner="phillip.allen@enron.com", path=enron / "allen-p")
    registries = []
    for source in (imap, maildir):
        registry = open_registry(f"sqlite:///{tmp_path / source.name}.db")
        assert sync_source(registry, Settings(sources=[source]), policy, source).ok
        registries.append(contents(registry))
    assert len(registries[0][0]) > 1000
    assert registries[0] == registries[1]


def test_new_mail_alone_is_fetched_and_an_idle_resync_only_asks_status(dovecot: DovecotServer) -> None:
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 5, "old")})
    connector = ImapConnector(imap_source(dovecot, "alice"))
    first, cursor = read(connector)
    assert len(first) == 5
    dovecot.append("alice", "INBOX", conversation("alice@acme.test", CUSTOMERS, 3, "new"))
    dovecot.clear_commands("alice")

    second, cursor = read(connector, cursor)

    assert [r.message_id for r in second] == ["new0@mail.test", "new1@mail.test", "new2@mail.test"]
    fetches = [line.split(" ", 2)[2] for line in dovecot.commands("alice") if " UID FETCH " in line]
    assert [fetch.split()[1] for fetch in fetches] == ["6,7,8"]
    assert "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM" in fetches[0]
    dovecot.clear_commands("alice")

    assert read(connector, cursor)[0] == []
    assert [line.split()[1] for line in dovecot.commands("alice")] == ["LIST", "STATUS", "LOGOUT"]


def test_fetch_commands_stay_under_8_kb_and_leave_mail_unread(dovecot: DovecotServer) -> None:
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 2200, "bulk")})
    records, _ = read(ImapConnector(imap_source(dovecot, "alice"), batch_size=2000))
    assert len(records) == 2200
    fetches = [line for line in dovecot.commands("alice") if " UID FETCH " in line]
    assert len(fetches) == 2
    assert max(len(line.encode()) for line in fetches) < MAX_COMMAND_BYTES
    with dovecot.client("alice") as client:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["UNSEEN"])) == 2200


def test_the_protocol_trace_costs_nothing_unless_its_logger_shows_debug(
        dovecot: DovecotServer, caplog: pytest.LogCaptureFixture) -> None:
    """imapclient would hand every line read to a logger that drops it; the trace runs only when shown,
    and never shows a password."""
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 3, "traced")})
    quiet = open_connection("127.0.0.1", dovecot.port, "plain", None, 10)
    assert quiet._imap.debug == 0
    quiet.shutdown()

    caplog.set_level(logging.DEBUG, logger=PROTOCOL_LOGGER)
    records, _ = read(ImapConnector(imap_source(dovecot, "alice")))

    trace = [r.getMessage() for r in caplog.records if r.name == PROTOCOL_LOGGER]
    assert len(records) == 3 and any("UID FETCH" in line for line in trace)
    assert not any(dovecot.users["alice"] in line for line in trace)


def test_uid_chunks_respect_count_and_command_budget() -> None:
    uids = list(range(4_000_000_000, 4_000_003_000))
    chunks = list(uid_chunks(uids, size=2000, budget=7000))
    assert [uid for chunk in chunks for uid in chunk] == uids
    assert all(len(",".join(map(str, chunk))) <= 7000 for chunk in chunks)
    assert [len(chunk) for chunk in uid_chunks(uids[:5], size=2)] == [2, 2, 1]


def test_fetch_responses_are_read_whatever_the_item_order() -> None:
    """imaplib hands a (prefix, literal) pair per message; servers may put UID after the literal,
    and unsolicited FETCH responses for other messages may come in between."""
    data = [
        (b'1 (INTERNALDATE "02-Mar-2026 09:00:00 +0100" BODY[HEADER.FIELDS (FROM)] {26}', b"From: ann@client.test\r\n\r\n"),
        b" UID 41)",
        b"2 (FLAGS (\\Seen) UID 42)",
        (b"3 (UID 43 BODY[HEADER.FIELDS (FROM)] {2}", b"\r\n"),
        b")",
    ]
    rows = fetched_headers(data, {41, 43})
    assert [(row.uid, row.header) for row in rows] == [(41, b"From: ann@client.test\r\n\r\n"), (43, b"\r\n")]
    assert rows[0].received() == datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    assert rows[1].received() is None


def test_folders_by_special_use_config_extras_and_exclusions(dovecot: DovecotServer) -> None:
    fill(dovecot, "alice", {
        name: [message("ann@client.test", "alice@acme.test", message_id=f"<{name.replace('/', '-')}@client.test>")]
        for name in ("INBOX", "Sent", "Archive", "Junk", "Trash", "Drafts", "Projects/Acme", "Newsletters")
    })
    source = imap_source(dovecot, "alice", folders=["Projects/Acme", "Trash", "Lost"], exclude_folders=["Archive"])
    batches = list(ImapConnector(source).sync(None))
    assert sorted({r.folder for b in batches for r in b.records}) == ["INBOX", "Projects/Acme", "Sent"]
    assert [(s.ref, s.reason) for b in batches for s in b.skipped] == [("Lost", "folder not found on the server")]


def test_folders_by_name_on_a_server_without_special_use(dovecot_without_special_use: DovecotServer) -> None:
    server = dovecot_without_special_use
    fill(server, "alice", {
        name: [message("ann@client.test", "alice@acme.test", message_id=f"<{name.replace(' ', '-')}@client.test>")]
        for name in ("INBOX", "Sent Items", "Archive", "Junk E-mail", "Deleted Items", "Drafts")
    })
    records, _ = read(ImapConnector(imap_source(server, "alice")))
    assert sorted(r.folder for r in records) == ["Archive", "INBOX", "Sent Items"]


def test_recreated_folder_is_rescanned_without_duplicates(dovecot: DovecotServer, engine: Engine) -> None:
    sent = conversation("alice@acme.test", CUSTOMERS, 6, "sent")
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 4, "in"), "Sent": sent})
    source = imap_source(dovecot, "alice")
    assert sync(engine, source).ok
    before = contents(engine)
    old_uidvalidity = source_row(engine, source).cursor["folders"]["Sent"]["uidvalidity"]
    dovecot.recreate_folder("alice", "Sent", sent)
    dovecot.clear_commands("alice")

    report = sync(engine, source)

    assert report.ok and report.messages == 6
    assert contents(engine) == before
    assert source_row(engine, source).cursor["folders"]["Sent"]["uidvalidity"] != old_uidvalidity
    assert [line.split(" ", 1)[1] for line in dovecot.commands("alice")].count('EXAMINE "Sent"') == 2


def test_messages_expunged_on_the_server_stay_in_the_registry(dovecot: DovecotServer, engine: Engine) -> None:
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 5, "kept")})
    source = imap_source(dovecot, "alice")
    assert sync(engine, source).ok
    with dovecot.client("alice") as client:
        client.select_folder("INBOX")
        client.delete_messages([1, 2])
        client.expunge()
    dovecot.append("alice", "INBOX", conversation("alice@acme.test", CUSTOMERS, 1, "later"))

    assert sync(engine, source).messages == 1
    keys = [row[0] for row in contents(engine)[0]]
    assert keys == sorted([f"kept{n}@mail.test" for n in range(5)] + ["later0@mail.test"])


def test_server_stopped_mid_sync_then_next_sync_completes(dovecot_private: DovecotServer, engine: Engine, tmp_path: Path) -> None:
    """The server stops at the first commit, which holds eight of the twenty batches: more are left
    than the two a busy machine's read-ahead may have fetched already."""
    fill(dovecot_private, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 400, "in")})
    source = imap_source(dovecot_private, "alice")

    report = sync(engine, source, batch_size=20, progress=lambda _source, _items: dovecot_private.stop())

    assert not report.ok and "connection failed after 2 attempts" in report.error
    row = source_row(engine, source)
    assert (row.status, row.failures) == ("retrying", 1) and row.retry_at == report.retry_at
    assert 0 < len(contents(engine)[0]) < 400
    dovecot_private.start()
    assert sync(engine, source, batch_size=20).ok
    assert contents(engine) == uninterrupted(tmp_path, source)


def test_connection_dropped_mid_sync_is_resumed_by_reconnecting(
        dovecot_private: DovecotServer, engine: Engine, tmp_path: Path) -> None:
    fill(dovecot_private, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 100, "in")})
    source = imap_source(dovecot_private, "alice")
    restarts: list[int] = []

    def restart_once(_source: str, _items: int) -> None:
        if not restarts:
            restarts.append(1)
            dovecot_private.restart()

    report = sync(engine, source, batch_size=20, progress=restart_once)

    assert report.ok and report.messages == 100
    assert contents(engine) == uninterrupted(tmp_path, source)


def write_config(tmp_path: Path, sources: list[ImapSettings], batch_size: int = 500) -> Path:
    """A custody.toml for the CLI; passwords come from CUSTODY_TEST_PASSWORD_<USER> variables."""
    (tmp_path / "policy.yaml").write_text("company_domains: [acme.test]\n")
    lines = [f'data_dir = "{tmp_path / "data"}"', 'policy_file = "policy.yaml"', f"batch_size = {batch_size}"]
    for source in sources:
        lines += ["[[sources]]"] + [f"{key} = {json.dumps(value)}" for key, value in {
            "name": source.name, "kind": "imap", "owner": source.owner, "host": source.host, "port": source.port,
            "security": source.security, "username": source.username, "password_env": password_env(source.username),
        }.items()]
        lines += [f"{key} = {value}" for key, value in QUICK_RETRIES.items()]
    path = tmp_path / "custody.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def password_env(user: str) -> str:
    return f"CUSTODY_TEST_PASSWORD_{user.upper()}"


def custody(config: Path, *args: str, passwords: dict[str, str]) -> subprocess.Popen[str]:
    env = os.environ | {password_env(user): secret for user, secret in passwords.items()} | {"COLUMNS": "400"}
    return subprocess.Popen([sys.executable, "-m", "daemon.cli.app", "--config", str(config), *args], cwd=PROJECT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def stored_messages(database: Path) -> int:
    try:
        with sqlite3.connect(database, timeout=5) as db:
            return int(db.execute("select count(*) from message").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_custody_killed_mid_sync_then_rerun_equals_an_uninterrupted_sync(dovecot: DovecotServer, tmp_path: Path) -> None:
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 3000, "in")})
    source = imap_source(dovecot, "alice")
    config = write_config(tmp_path, [source], batch_size=20)
    database = tmp_path / "data" / "custody.db"
    passwords = {dovecot.login("alice"): dovecot.users["alice"]}

    process = custody(config, "sync", "--source", source.name, passwords=passwords)
    while stored_messages(database) == 0 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert 0 < stored_messages(database) < 3000
    assert finished(custody(config, "sync", "--source", source.name, passwords=passwords))[0] == 0
    assert contents(open_registry(f"sqlite:///{database}")) == uninterrupted(tmp_path, source)


def test_wrong_password_fails_that_source_only_with_a_clear_reason(dovecot: DovecotServer, tmp_path: Path) -> None:
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 4, "a")})
    fill(dovecot, "mallory", {"INBOX": conversation("mallory@acme.test", CUSTOMERS, 4, "m")})
    alice, mallory = imap_source(dovecot, "alice"), imap_source(dovecot, "mallory")
    config = write_config(tmp_path, [alice, mallory])
    passwords = {dovecot.login("alice"): dovecot.users["alice"], dovecot.login("mallory"): "not-the-password"}

    code, output = finished(custody(config, "sync", passwords=passwords))
    assert code == 1
    assert "alice-imap: 4 messages" in output
    assert f"login as {dovecot.login('mallory')} failed: [AUTHENTICATIONFAILED] Authentication failed." in output
    assert "not-the-password" not in output
    assert finished(custody(config, "sync", "--source", "alice-imap", passwords=passwords))[0] == 0
    assert finished(custody(config, "sync", "--source", "mallory-imap", passwords=passwords))[0] == 1

    code, status = finished(custody(config, "status", passwords=passwords))
    failing = [line for line in status.splitlines() if "mallory-imap" in line]
    assert code == 0 and len(failing) == 1
    assert "auth_failed" in failing[0] and f"login as {dovecot.login('mallory')} failed" in failing[0]
    assert "failing" not in next(line for line in status.splitlines() if "alice-imap" in line)


def test_messages_with_broken_headers_are_counted_and_skipped(dovecot: DovecotServer, engine: Engine) -> None:
    broken = [b"Subject: nobody sent this\r\nTo: alice@acme.test\r\n\r\nhello\r\n",
              b"From: undisclosed\r\nSubject: no address\r\n\r\nhello\r\n"]
    fill(dovecot, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 3, "ok") + broken})
    source = imap_source(dovecot, "alice")

    report = sync(engine, source)

    assert (report.ok, report.messages, report.skipped) == (True, 3, 2)
    uidvalidity = source_row(engine, source).cursor["folders"]["INBOX"]["uidvalidity"]
    with engine.connect() as db:
        issues = sorted(db.execute(select(SyncIssue.ref, SyncIssue.reason)).all())
    assert [tuple(issue) for issue in issues] == [
        (f"INBOX/{uidvalidity}/4", "no usable From address"), (f"INBOX/{uidvalidity}/5", "no usable From address")]


def test_implicit_tls_and_starttls_verify_the_server_certificate(dovecot_tls: DovecotServer) -> None:
    fill(dovecot_tls, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 2, "tls")})
    implicit = imap_source(dovecot_tls, "alice", security="tls", port=dovecot_tls.tls_port, ca_file=dovecot_tls.ca_file)
    starttls = imap_source(dovecot_tls, "alice", security="starttls", ca_file=dovecot_tls.ca_file)
    assert len(read(ImapConnector(implicit))[0]) == 2
    assert len(read(ImapConnector(starttls))[0]) == 2
    untrusted = imap_source(dovecot_tls, "alice", security="tls", port=dovecot_tls.tls_port)
    with pytest.raises(PermanentError, match="TLS certificate not trusted"):
        read(ImapConnector(untrusted))


def test_xoauth2_logs_in_with_the_token_provider_and_a_rejected_token_is_a_clear_error(
    dovecot_oauth2: tuple[DovecotServer, TokenInfoServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, tokeninfo = dovecot_oauth2
    fill(server, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 3, "oauth")})
    tokeninfo.tokens["fresh-access-token"] = "alice"
    source = imap_source(server, "alice", auth="xoauth2", token_env="ALICE_IMAP_TOKEN", password=None)
    monkeypatch.setenv("ALICE_IMAP_TOKEN", "fresh-access-token")
    assert len(read(ImapConnector(source))[0]) == 3
    monkeypatch.setenv("ALICE_IMAP_TOKEN", "expired-access-token")
    with pytest.raises(AuthError, match="login as alice failed: .*AUTHENTICATIONFAILED") as failure:
        read(ImapConnector(source))
    assert "expired-access-token" not in str(failure.value)
    monkeypatch.delenv("ALICE_IMAP_TOKEN")
    with pytest.raises(AuthError, match="ALICE_IMAP_TOKEN .* is not set"):
        read(ImapConnector(source))


@pytest.mark.parametrize("provider", ["microsoft365", "google"])
def test_xoauth2_logs_in_with_a_token_custody_gets_from_microsoft_365_or_google(
    dovecot_oauth2: tuple[DovecotServer, TokenInfoServer], tmp_path: Path, provider: str, request: pytest.FixtureRequest,
) -> None:
    server, tokeninfo = dovecot_oauth2
    fill(server, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 2, provider)})
    if provider == "microsoft365":
        issuer: Any = request.getfixturevalue("graph_tenant")
        app: Any = MicrosoftApp(**{k: v for k, v in tenant_app(issuer, tmp_path).items() if k != "retry_wait_seconds"})
    else:
        issuer = request.getfixturevalue("google_workspace")
        issuer.add_user(server.login("alice"))
        issuer.delegate(IMAP_SCOPE)
        app = GoogleApp(**{k: v for k, v in workspace_app(issuer, tmp_path).items() if k != "api_endpoint"})
    connector = ImapConnector(imap_source(server, "alice", auth="xoauth2", password=None, **{provider: app}))
    assert connector.token_provider is not None
    tokeninfo.tokens[connector.token_provider.token(server.login("alice"))] = "alice"

    assert len(read(connector)[0]) == 2 and issuer.token_requests == 1


def test_plain_text_beyond_loopback_and_xoauth2_without_a_token_are_config_errors(dovecot: DovecotServer) -> None:
    fill(dovecot, "alice", {})
    with pytest.raises(ValidationError, match="allowed only for a loopback host"):
        imap_source(dovecot, "alice", host="imap.example.com")
    with pytest.raises(ValidationError, match="needs either token_env"):
        imap_source(dovecot, "alice", auth="xoauth2")



def test_a_message_without_a_date_header_takes_the_server_internaldate() -> None:
    rows = [Fetched(7, b"From: ann@client.test\r\nTo: bo@acme.test\r\n\r\n", b"02-Mar-2026 09:00:00 +0100"),
            Fetched(8, b"From: ann@client.test\r\nTo: bo@acme.test\r\n\r\n", b"")]
    records, skipped = parse_fetched(rows, "INBOX", "company", 1)
    assert [(r.date, r.date_source) for r in records] == [  # type: ignore[union-attr]
        (datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc), "internaldate")]
    assert [(s.ref, s.reason) for s in skipped] == [("INBOX/1/8", "missing or invalid Date")]


def test_damaged_messages_are_records_or_named_skips_and_dated_by_header_received_or_internaldate(
    dovecot: DovecotServer,
) -> None:
    damaged = [m for m in damaged_messages() if m.raw]  # Dovecot stores no empty message
    fill(dovecot, "alice", {"INBOX": [m.raw for m in damaged]})

    batches = list(ImapConnector(imap_source(dovecot, "alice"), batch_size=7).sync(None))

    uidvalidity = batches[-1].cursor["folders"]["INBOX"]["uidvalidity"]
    records = [r for batch in batches for r in batch.records]
    assert [(len(r.to) + len(r.cc) + len(r.bcc), r.date_source) for r in records] == [  # type: ignore[union-attr]
        (m.record.recipients, m.record.date_source.replace("delivery", "internaldate")) for m in damaged if m.record]
    assert [r.date for r in records if r.date_source != "internaldate"] == [  # type: ignore[union-attr]
        m.record.date for m in damaged if m.record and m.record.date_source != "delivery"]
    assert {s.ref: s.reason for batch in batches for s in batch.skipped} == {
        f"INBOX/{uidvalidity}/{uid}": m.skipped for uid, m in enumerate(damaged, start=1) if m.skipped}


def test_a_server_gone_mid_sync_fails_the_sync_with_the_fetch_position_noted(dovecot_private: DovecotServer) -> None:
    fill(dovecot_private, "alice", {"INBOX": conversation("alice@acme.test", CUSTOMERS, 200, "in")})
    batches = ImapConnector(imap_source(dovecot_private, "alice"), batch_size=20).sync(None)
    next(batches)
    dovecot_private.stop()

    with pytest.raises(TransientError, match="connection failed") as failure:
        list(batches)

    [note] = failure.value.__notes__
    position = re.fullmatch(r"at INBOX/\d+/(\d+)", note)
    assert position is not None and int(position.group(1)) > 20 and int(position.group(1)) % 20 == 1


class TestImapContract(ConnectorContract):
    """Each source is a new login on the session's Dovecot."""

    connector = ImapConnector

    @pytest.fixture(autouse=True)
    def _place(self, dovecot: DovecotServer) -> None:
        self.server = dovecot
        self.users = (f"contract{n}" for n in itertools.count())

    def make(self, items: int, unreadable: int = 0) -> ImapConnector:
        user = next(self.users)
        fill(self.server, user, {"INBOX": mails(items, unreadable)})
        return ImapConnector(imap_source(self.server, user), batch_size=BATCH_SIZE)

    def unreachable(self) -> ImapConnector:
        user = next(self.users)
        fill(self.server, user, {})
        return ImapConnector(imap_source(self.server, user, port=free_port()))

    def wrong_credentials(self) -> ImapConnector:
        user = next(self.users)
        fill(self.server, user, {"INBOX": mails(1)})
        return ImapConnector(imap_source(self.server, user, password="not-the-password"))

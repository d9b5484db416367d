"""A real SMTP server (aiosmtpd) on a loopback port that records every message it accepts.

Plain, or STARTTLS with a self-signed certificate and required login. Recipients listed in
`refuse` get a 550, as a relay answers for a mailbox that does not exist; those in `defer` a 451.
For those in `hang_up_after_data` the server keeps the message but drops the line before its 250.
Any other answer goes in `replies`, keyed by command and address (MAIL by sender, RCPT and DATA by
recipient); HANG_UP there drops the line instead of answering. `transcript` lists every MAIL, RCPT
and DATA the server saw. With `smtputf8=False` it does not offer SMTPUTF8, as many relays do not.

`FilingRelay` also files every message it accepts in the sending mailbox's Sent folder on Dovecot,
a little later, as Microsoft 365 and Gmail do.
"""

from __future__ import annotations

import logging
import queue
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers.dovecot import DovecotServer, free_port, write_self_signed_certificate

logging.getLogger("mail.log").setLevel(logging.WARNING)
HANG_UP = "hang up"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default)  # type: ignore[return-value]

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class _Recorder:
    def __init__(self, server: "SmtpServer") -> None:
        self.server = server

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        self.server.transcript.append(("MAIL", address))
        reply = self.server.replies.get(("MAIL", address.lower()))
        if reply:
            return _answer(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.server.transcript.append(("RCPT", address))
        if address.lower() in self.server.refuse:
            return "550 5.1.1 No such user here"
        if address.lower() in self.server.defer:
            return "451 4.3.0 Try again later"
        reply = self.server.replies.get(("RCPT", address.lower()))
        if reply:
            return _answer(server, reply)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.server.transcript.append(("DATA", ",".join(envelope.rcpt_tos)))
        reply = next((r for (command, address), r in self.server.replies.items()
                      if command == "DATA" and address in {a.lower() for a in envelope.rcpt_tos}), "")
        if reply:
            return _answer(server, reply)
        received = Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content)
        with self.server.lock:
            self.server.received.append(received)
        self.server.accepted(received)
        if self.server.hang_up_after_data & set(envelope.rcpt_tos):
            server.transport.close()
        return "250 Message accepted for delivery"


def _answer(server, reply: str) -> str:  # type: ignore[no-untyped-def]
    """The reply, or for HANG_UP a closed line: the client never gets an answer."""
    if reply == HANG_UP:
        server.transport.close()
    return reply


class SmtpServer:
    def __init__(self, tls_dir: Path | None = None, users: dict[str, str] | None = None, implicit_tls: bool = False,
                 smtputf8: bool = True) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self.defer: set[str] = set()
        self.hang_up_after_data: set[str] = set()
        self.replies: dict[tuple[str, str], str] = {}
        self.transcript: list[tuple[str, str]] = []
        self.users = users or {}
        self.lock = threading.Lock()
        self.ca_file: Path | None = None
        options: dict[str, object] = {"enable_SMTPUTF8": smtputf8}
        if tls_dir is not None:
            self.ca_file = tls_dir / "cert.pem"
            write_self_signed_certificate(self.ca_file, tls_dir / "key.pem")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca_file, tls_dir / "key.pem")
            if implicit_tls:  # aiosmtpd counts only STARTTLS as TLS when offering AUTH
                options.update(ssl_context=context, auth_require_tls=False)
            else:
                options.update(tls_context=context, require_starttls=True)
        if self.users:
            options.update(authenticator=self._authenticate, auth_required=True)
        self._controller = Controller(_Recorder(self), hostname="127.0.0.1", port=self.port, **options)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received]

    def accepted(self, received: Received) -> None:
        """Called for every message the server took; a relay that does more with it says so here."""

    def _authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)


class FilingRelay(SmtpServer):
    """A relay that files each message it accepts in Sent of one Dovecot user, `delay` seconds later."""

    def __init__(self, dovecot: DovecotServer, user: str, folder: str = "Sent", delay: float = 0.2) -> None:
        super().__init__()
        self.dovecot = dovecot
        self.user = user
        self.folder = folder
        self.delay = delay
        self.copies_filed = 0
        self._due: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        self._clerk = threading.Thread(target=self._file_copies, name="filing-relay", daemon=True)

    def start(self) -> None:
        with self.dovecot.client(self.user) as imap:
            if not imap.folder_exists(self.folder):
                imap.create_folder(self.folder)
        self._clerk.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        self._due.put(None)
        self._clerk.join()

    def accepted(self, received: Received) -> None:
        self._due.put((time.monotonic() + self.delay, received.raw))

    def filed(self) -> list[str]:
        """The Message-ID of every message in the Sent folder, whoever filed it."""
        with self.dovecot.client(self.user) as imap:
            imap.select_folder(self.folder, readonly=True)
            uids = imap.search(["ALL"])
            headers = imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
        parser = BytesHeaderParser(policy=default)
        return [str(parser.parsebytes(data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"])["Message-ID"])
                for data in headers.values()]

    def _file_copies(self) -> None:
        """One IMAP session appending each copy once its delay has passed, in the order accepted."""
        with self.dovecot.client(self.user) as imap:
            while (item := self._due.get()) is not None:
                due, raw = item
                time.sleep(max(0.0, due - time.monotonic()))
                imap.append(self.folder, raw)
                self.copies_filed += 1


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback that accepts everything not in `refuse`."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_tls_server() -> Iterator[SmtpServer]:
    """STARTTLS required (self-signed certificate in `ca_file`) and login as sender / s3cret."""
    folder = Path(tempfile.mkdtemp(prefix="custody-smtp-"))
    server = SmtpServer(tls_dir=folder, users={"sender": "s3cret"})
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def smtp_implicit_tls_server() -> Iterator[SmtpServer]:
    """TLS from the first byte (port 465 style), self-signed certificate in `ca_file`, login as sender / s3cret."""
    folder = Path(tempfile.mkdtemp(prefix="custody-smtps-"))
    server = SmtpServer(tls_dir=folder, users={"sender": "s3cret"}, implicit_tls=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def filing_relay(dovecot: DovecotServer) -> Iterator[FilingRelay]:
    """A plain relay filing each accepted message in Sent of the Dovecot user outbox / outbox-secret, 0.2 s later."""
    dovecot.add_user("outbox", "outbox-secret")
    relay = FilingRelay(dovecot, "outbox")
    relay.start()
    yield relay
    relay.stop()

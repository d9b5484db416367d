"""A real SMTP server (aiosmtpd) on a loopback port that records every message it accepts.

Plain, or STARTTLS with a self-signed certificate and required login. Recipients listed in
`refuse` get a 550, as a relay answers for a mailbox that does not exist; those in `defer` a 451.
For those in `hang_up_after_data` the server keeps the message but drops the line before its 250.
"""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers.dovecot import free_port, write_self_signed_certificate

logging.getLogger("mail.log").setLevel(logging.WARNING)


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

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.lower() in self.server.refuse:
            return "550 5.1.1 No such user here"
        if address.lower() in self.server.defer:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.server.lock:
            self.server.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        if self.server.hang_up_after_data & set(envelope.rcpt_tos):
            server.transport.close()
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, tls_dir: Path | None = None, users: dict[str, str] | None = None, implicit_tls: bool = False) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self.defer: set[str] = set()
        self.hang_up_after_data: set[str] = set()
        self.users = users or {}
        self.lock = threading.Lock()
        self.ca_file: Path | None = None
        options: dict[str, object] = {}
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

    def _authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)


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

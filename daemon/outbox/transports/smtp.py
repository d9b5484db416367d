"""SMTP through smtplib: STARTTLS or implicit TLS with certificate verification, optional login.

With a sent folder configured, each message is filed there first (flagged pending) so that a send
a crash left in doubt can be looked up afterwards, unless the relay files its own copy there; see
daemon/outbox/transports/mailbox.py.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Collection
from email.message import EmailMessage
from email.utils import getaddresses

from config.sections import SmtpConfig
from daemon.outbox.transports.base import TransportError, refuse_plain_text_off_loopback
from daemon.outbox.transports.mailbox import SendingMailbox

log = logging.getLogger("custody.smtp")
_DEFAULT_PORTS = {"tls": 465, "starttls": 587, "plain": 25}
_SESSION_INTACT = (smtplib.SMTPResponseException, smtplib.SMTPNotSupportedError)
"""Failures after which the session is still in step: the server answered, or nothing was sent."""


class _TracksData:
    """Remembers whether DATA began, which separates 'not sent' from 'maybe sent' when a link breaks."""

    data_started = False

    def data(self, msg):  # type: ignore[no-untyped-def]
        self.data_started = True
        return super().data(msg)  # type: ignore[misc]


class _SMTP(_TracksData, smtplib.SMTP):
    pass


class _SMTPS(_TracksData, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.mailbox = SendingMailbox(config.sent_folder) if config.sent_folder else None
        # Where custody files its own copy of each message; None without a sent folder or where the relay files it.
        self._filing = self.mailbox if config.sent_folder and config.sent_folder.filed_by == "custody" else None
        self._smtp: _SMTP | _SMTPS | None = None

    def send(self, message: EmailMessage, already: Collection[str] = ()) -> None:
        message_id = str(message["Message-ID"])
        if self._filing:
            self._filing.file_pending(message)
        try:
            self._deliver(message, _envelope_recipients(message, already))
        except TransportError as error:
            if self._filing and not error.in_doubt:
                self._discard_copy(message_id)
            raise
        if self._filing:
            self._confirm_copy(message_id)

    def find_sent(self, message_id: str, sender: str) -> bool | None:
        """One sent folder serves every sender."""
        return self.mailbox.lookup(message_id) if self.mailbox else None

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
        if self.mailbox:
            self.mailbox.close()

    def _deliver(self, message: EmailMessage, recipients: list[str]) -> None:
        smtp = self._connected()
        smtp.data_started = False
        addressee = str(message["To"]).lower()
        try:
            refused = _send(smtp, message, recipients)
        except _SESSION_INTACT as error:
            self._reset()
            raise classify(error, addressee, smtp.data_started, self.config.host) from None
        except (smtplib.SMTPException, OSError) as error:
            self._drop()
            raise classify(error, addressee, smtp.data_started, self.config.host) from None
        code = _addressee_code(refused, addressee)
        if code is not None:
            refused_addresses = {address.lower() for address in refused}
            raise TransportError(f"recipient refused (copies went out): {_describe_refusals(refused)}",
                                 permanent=_permanent(code),
                                 delivered=tuple(a for a in recipients if a.lower() not in refused_addresses))
        if refused:
            log.warning("relay accepted the message for some recipients only: %s", _describe_refusals(refused))

    def _connected(self) -> _SMTP | _SMTPS:
        if self._smtp is None:
            self._smtp = self._open()
        return self._smtp

    def _open(self) -> _SMTP | _SMTPS:
        config = self.config
        refuse_plain_text_off_loopback(config.host, config.security, "smtp")
        port = config.port or _DEFAULT_PORTS[config.security]
        context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        smtp: _SMTP | _SMTPS | None = None
        try:
            if config.security == "tls":
                smtp = _SMTPS(config.host, port, timeout=config.timeout_seconds, context=context)
            else:
                smtp = _SMTP(config.host, port, timeout=config.timeout_seconds)
                if config.security == "starttls":
                    smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, config.secret())
        except smtplib.SMTPAuthenticationError as error:
            _close_quietly(smtp)
            raise TransportError(f"SMTP login as {config.username} refused: {error.smtp_code}",
                                 unreachable=True) from None
        except ssl.SSLCertVerificationError as error:
            _close_quietly(smtp)
            raise TransportError(f"SMTP server {config.host}: TLS certificate not trusted ({error.verify_message})",
                                 unreachable=True) from None
        except (smtplib.SMTPException, OSError) as error:
            _close_quietly(smtp)
            raise TransportError(f"cannot reach SMTP server {config.host}:{port}: {type(error).__name__}: {error}",
                                 unreachable=True) from None
        return smtp

    def _reset(self) -> None:
        """After a refusal the session is still good; RSET it, or drop it when even that fails."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        _close_quietly(smtp)

    def _discard_copy(self, message_id: str) -> None:
        try:
            self._filing.discard_pending(message_id)  # type: ignore[union-attr]
        except TransportError as error:
            log.warning("could not remove the unsent copy of %s from the sent folder: %s", message_id, error)

    def _confirm_copy(self, message_id: str) -> None:
        """The relay has the message: a failure here must not turn into a retry, only a warning."""
        try:
            self._filing.confirm(message_id)  # type: ignore[union-attr]
        except TransportError as error:
            log.warning("sent %s but could not clear its pending flag in the sent folder: %s", message_id, error)


def _send(smtp: smtplib.SMTP, message: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
    """Serialised with the message's own policy: smtplib's send_message uses a generator that turns
    every body line starting with "From " into ">From ", which would change a customer's letter. As
    send_message does, an address that is not ASCII needs the relay's SMTPUTF8."""
    sender = message["From"].addresses[0].addr_spec
    smtp.ehlo_or_helo_if_needed()
    if sender.isascii() and all(address.isascii() for address in recipients):
        return smtp.sendmail(sender, recipients, message.as_bytes(policy=message.policy))
    if not smtp.has_extn("smtputf8"):
        raise smtplib.SMTPNotSupportedError(
            "an address needs internationalized email (SMTPUTF8), which the relay does not offer")
    return smtp.sendmail(sender, recipients, message.as_bytes(policy=message.policy.clone(utf8=True)),
                         mail_options=("SMTPUTF8", "BODY=8BITMIME"))


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        smtp.close()


def _envelope_recipients(message: EmailMessage, already: Collection[str]) -> list[str]:
    """The addresses smtplib would send to (To, Bcc, Cc), less those an earlier attempt reached."""
    skip = {address.lower() for address in already}
    fields = [str(value) for name in ("To", "Bcc", "Cc") for value in message.get_all(name, [])]
    return [address for _, address in getaddresses(fields) if address and address.lower() not in skip]


def classify(error: Exception, addressee: str, data_started: bool, host: str) -> TransportError:
    """What one failed SMTP transaction means for its notification; the only place reply codes are read.

    failure                                                      verdict
    an address needs SMTPUTF8 and the relay does not offer it    permanent: no retry changes the address
    addressee refused at RCPT, 5xx (no such user, bad syntax)    permanent
    sender refused at MAIL, or the message at DATA, 5xx          permanent
    any refusal with 4xx, or another reply                       retry with backoff
    line lost before DATA began                                  retry with backoff
    line lost once DATA began                                    in doubt: looked up before any retry
    """
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return TransportError(f"the relay {host} does not offer SMTPUTF8, which a non-ASCII address needs",
                              permanent=True)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return TransportError(f"recipients refused: {_describe_refusals(error.recipients)}",
                              permanent=_permanent(_addressee_code(error.recipients, addressee)))
    if isinstance(error, smtplib.SMTPSenderRefused):
        return TransportError(f"sender {error.sender} refused: {error.smtp_code} {_text(error.smtp_error)}",
                              permanent=_permanent(error.smtp_code))
    if isinstance(error, smtplib.SMTPDataError):
        return TransportError(f"message refused at DATA: {error.smtp_code} {_text(error.smtp_error)}",
                              permanent=_permanent(error.smtp_code))
    if isinstance(error, smtplib.SMTPResponseException):
        return TransportError(f"SMTP {error.smtp_code}: {_text(error.smtp_error)}", permanent=_permanent(error.smtp_code))
    return TransportError(f"SMTP connection to {host} broke: {type(error).__name__}", in_doubt=data_started)


def _permanent(code: int | None) -> bool:
    return code is not None and 500 <= code <= 599


def _addressee_code(refusals: dict[str, tuple[int, bytes]], addressee: str) -> int | None:
    """The addressee's reply code, None when it was not refused: refused copies alone fail nothing."""
    return next((code for address, (code, _) in refusals.items() if address.lower() == addressee), None)


def _describe_refusals(refusals: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in refusals.items())


def _text(reply: bytes | str) -> str:
    return (reply.decode(errors="replace") if isinstance(reply, bytes) else reply)[:300]

"""What the outbox needs from a way of sending mail; SMTP and the file transport provide it."""

from __future__ import annotations

from collections.abc import Collection
from email.message import EmailMessage
from typing import Protocol

from connectors.network import is_loopback


class TransportError(Exception):
    """A send that did not complete.

    `permanent`: retrying cannot help (a 5xx refusal, an address the relay cannot take).
    `unreachable`: nothing can be sent right now (no connection, login refused), so the run should
    stop. `in_doubt`: the connection broke after the message was handed over, so it may have gone
    out and must be checked before any retry.
    `delivered`: recipients that accepted the message although the addressee did not; a retry must
    not send it to them again.
    """

    def __init__(self, message: str, *, permanent: bool = False, unreachable: bool = False,
                 in_doubt: bool = False, delivered: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unreachable = unreachable
        self.in_doubt = in_doubt
        self.delivered = delivered


class Transport(Protocol):
    def send(self, message: EmailMessage, already: Collection[str] = ()) -> None:
        """Deliver to every recipient except those `already` reached by an earlier attempt, or raise
        TransportError; returning means the system accepted the message."""

    def find_sent(self, message_id: str) -> bool | None:
        """Whether the sending mailbox holds the message: True sent, False never sent, None cannot tell.
        Asked only about sends attempted before the run began; it may wait for a relay to file its copy."""

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""


def refuse_plain_text_off_loopback(host: str, security: str, what: str) -> None:
    """A password sent without TLS is only acceptable to a server on this machine."""
    if security == "plain" and not is_loopback(host):
        raise TransportError(f"{what}: security = \"plain\" is allowed only for a loopback host", unreachable=True)

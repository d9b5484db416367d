"""What the outbox needs from a way of sending mail; SMTP, Microsoft Graph and the file transport provide it."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from email.message import EmailMessage
from typing import Protocol

from connectors.errors import AuthError, ConnectorError, TransientError, Untrusted
from connectors.network import is_loopback

_POLL_SECONDS = 1.0


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

    def find_sent(self, message_id: str, sender: str) -> bool | None:
        """Whether the sending mailbox holds the message `sender` sent: True sent, False never sent, None
        cannot tell. Asked only about sends attempted before the run began; it may wait for a relay to
        file its copy. `sender` names the mailbox where the transport sends from each letter's own."""

    def close(self) -> None:
        """Release connections; the transport may be used again afterwards."""


def refuse_plain_text_off_loopback(host: str, security: str, what: str) -> None:
    """A password sent without TLS is only acceptable to a server on this machine."""
    if security == "plain" and not is_loopback(host):
        raise TransportError(f"{what}: security = \"plain\" is allowed only for a loopback host", unreachable=True)


def refused_send(error: ConnectorError) -> TransportError:
    """What an API's refusal of one send means for its notification.

    failure                                                          verdict
    credentials or permissions refused, throttled or failing         unreachable: the run stops, a later one retries
    past retries, an untrusted certificate
    any other refusal (a recipient refused, an unknown mailbox)      permanent
    """
    if isinstance(error, (AuthError, TransientError, Untrusted)):
        return TransportError(str(error), unreachable=True)
    return TransportError(str(error), permanent=True)


class FilingWait:
    """The wait for copies a relay files in Sent a little after accepting each message.

    It is counted from the first lookup since `reset()`: every send looked up in one run was attempted
    before that lookup (the outbox settles sends left in doubt before it sends anything), so one wait
    covers them all, however many there are.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._due: float | None = None

    def found(self, look: Callable[[], bool]) -> bool:
        """Whether `look` finds the copy before the wait is over."""
        if self._due is None:
            self._due = time.monotonic() + self.seconds
        while not look():
            remaining = self._due - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL_SECONDS, remaining))
        return True

    def reset(self) -> None:
        self._due = None

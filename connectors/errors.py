"""How a source can fail, each class mapped by the sync engine to one decision.

A connector raises these for failures of the whole source; one unreadable item is a `Skipped`
record, never an error. Anything else that escapes a connector is a bug: the engine still fails
only that source, and logs the traceback.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A failure of a whole source; raise one of the subclasses, which say what to do next."""


class AuthError(ConnectorError):
    """The credentials were refused or cannot be had: retrying changes nothing until the source's
    settings (or the secret they name) change, so the source stops and an admin is alerted."""


class TransientError(ConnectorError):
    """The server is unreachable, overloaded or throttling: retry later with backoff, no sooner than
    the server's own hint."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CursorInvalid(ConnectorError):
    """The stored cursor no longer means anything to the server (a mailbox recreated, a delta token
    expired): drop it and read the source again from the start; ingest is idempotent."""


class PermanentError(ConnectorError):
    """The source is broken in a way the connector cannot work around (a missing path, an untrusted
    certificate, a refusal that is not about credentials): keep the last error and alert."""


class Untrusted(PermanentError):
    """The server's TLS certificate is not trusted: nothing can be read or sent until that is fixed."""

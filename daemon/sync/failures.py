"""What a failed sync of a source decides, from the class of its failure (`connectors.errors`).

The decision is stored on the source: an auth failure stops it until its settings change or
custody restarts (when secrets are read again); a transient one is retried after backoff, never
sooner than the server asked; anything else fails the source at its normal interval and alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.errors import AuthError, ConnectorError, TransientError
from registry.conflicts import is_write_conflict
from registry.states import SourceStatus

log = logging.getLogger("custody.sync")
FIRST_BACKOFF = timedelta(minutes=1)
LONGEST_BACKOFF = timedelta(hours=1)
CONFLICT_BACKOFF = timedelta(seconds=5)
"""A batch that lost a race with another writer is stored again soon: nothing about it was wrong."""


@dataclass(frozen=True)
class Failure:
    """Why a source stopped, in one line, with what to do about it."""

    status: SourceStatus
    error: str
    retry_after: float | None = None
    first_backoff: timedelta = FIRST_BACKOFF

    def retry_at(self, now: datetime, failures: int) -> datetime | None:
        """When a transient failure is tried again: exponential backoff over the consecutive
        failures, and never before the server's own hint."""
        if self.status != SourceStatus.RETRYING:
            return None
        backoff = min(self.first_backoff * 2 ** max(failures - 1, 0), LONGEST_BACKOFF)
        return now + max(backoff, timedelta(seconds=self.retry_after or 0))


def classify(error: BaseException, source: str) -> Failure:
    """The failure of one source, named with the item it was on when the connector said. An
    exception that is not a connector's is a bug: logged with its traceback, and still only this
    source fails."""
    if isinstance(error, ConnectorError | OSError):
        text = str(error) or type(error).__name__
    elif is_write_conflict(error):
        first_line = str(getattr(error, "orig", error)).splitlines()[0]
        return Failure(SourceStatus.RETRYING, f"storing a batch met another writer's transaction: {first_line}",
                       first_backoff=CONFLICT_BACKOFF)
    else:
        log.error("reading source %s failed unexpectedly", source, exc_info=error)
        text = f"unexpected {type(error).__name__}: {error}"
    text = " ".join([text, *getattr(error, "__notes__", ())])
    if isinstance(error, AuthError):
        return Failure(SourceStatus.AUTH_FAILED, text)
    if isinstance(error, TransientError):
        return Failure(SourceStatus.RETRYING, text, error.retry_after)
    return Failure(SourceStatus.FAILING, text)

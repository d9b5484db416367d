"""The cloud clients' one retry policy: try again what a later try can cure, backing off from a
first wait that doubles up to a minute, and never sooner than the server's own hint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from connectors.errors import TransientError

log = logging.getLogger("custody.retry")
T = TypeVar("T")
MAX_BACKOFF_SECONDS = 60.0


class Retry(Exception):
    """A failure a later try can cure; `retry_after` is the server's hint in seconds, if it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def retried(call: Callable[..., T], *args: Any, attempts: int, first_wait: float, where: str) -> T:
    """`call(*args)`, tried up to `attempts` times while it raises Retry; then a TransientError
    naming `where` and carrying the last hint, for the sync engine to reschedule by."""
    retrying = Retrying(retry=retry_if_exception_type(Retry), stop=stop_after_attempt(attempts),
                        wait=lambda attempt: _wait(first_wait, attempt), before_sleep=_logged, reraise=True)
    try:
        return retrying(call, *args)
    except Retry as error:
        raise TransientError(f"{where}: {error} after {attempts} attempts", error.retry_after) from None


def backoff(first_wait: float, attempt: int, hint: float | None = None) -> float:
    """The wait before try `attempt + 1`."""
    return max(min(first_wait * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS), hint or 0.0)


def _wait(first_wait: float, attempt: RetryCallState) -> float:
    error = attempt.outcome.exception() if attempt.outcome else None
    return backoff(first_wait, attempt.attempt_number, error.retry_after if isinstance(error, Retry) else None)


def _logged(attempt: RetryCallState) -> None:
    error = attempt.outcome.exception() if attempt.outcome else None
    log.info("%s; retrying in %.1f s", error, attempt.upcoming_sleep)

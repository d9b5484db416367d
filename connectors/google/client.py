"""Google API calls as the quota allows: each user's calls paced under `units_per_minute` (Gmail
charges each method its documented units), rate-limit refusals (429, and 403 rateLimitExceeded /
userRateLimitExceeded) and 5xx retried with backoff no shorter than the server's hint, and every
refusal turned into the connector error that says what to do next.

One `build()` per user and API, each with its own httplib2 connection: httplib2 is not thread-safe
and chains of different users run in different threads.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from googleapiclient.discovery import Resource, build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest

from connectors.errors import AuthError, CursorInvalid, PermanentError, TransientError
from connectors.google.auth import delegated, refused, service_account_info
from connectors.google.settings import GoogleApp
from connectors.retrying import Retry, backoff, retried

log = logging.getLogger("custody.google")
T = TypeVar("T")
WINDOW_SECONDS = 60.0
RATE_REASONS = frozenset({"ratelimitexceeded", "userratelimitexceeded", "backenderror"})
RESYNC_REASONS = frozenset({"expired_sync_token"})
_RETRY_AFTER = re.compile(r"Retry after (\S+)")


class NotFound(PermanentError):
    """The user, message or group does not exist."""


class QuotaPacer:
    """A sliding minute of quota units per user: waits before a call that would go over."""

    def __init__(self, units_per_minute: int) -> None:
        self.limit = units_per_minute
        self._spent: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def take(self, user: str, units: int) -> None:
        while True:
            with self._lock:
                spent = self._spent.setdefault(user, deque())
                now = time.monotonic()
                while spent and spent[0][0] <= now - WINDOW_SECONDS:
                    spent.popleft()
                if sum(u for _, u in spent) + units <= self.limit or not spent:
                    spent.append((now, units))
                    return
                wait = spent[0][0] + WINDOW_SECONDS - now
            log.debug("quota of %s: waiting %.1f s", user, wait)
            time.sleep(wait)


class GoogleClient:
    """Services acting as each user, and calls through them with pacing, retries and error mapping."""

    def __init__(self, app: GoogleApp, scopes: list[str]) -> None:
        self.app = app
        self.scopes = scopes
        self.pacer = QuotaPacer(app.units_per_minute)
        self._client_id = ""

    def service(self, api: str, version: str, user: str) -> Resource:
        """A fresh service acting as `user`, for one thread."""
        credentials = delegated(self.app, self.scopes, user)
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=self.app.timeout_seconds))
        options = {"api_endpoint": self.app.api_endpoint} if self.app.api_endpoint else None
        return build(api, version, http=http, static_discovery=True, cache_discovery=False, client_options=options)

    def batch(self, user: str, service: Resource, requests: dict[str, HttpRequest], units: int) -> dict[str, Any]:
        """Run `requests` (each `units`) as one Gmail batch; returns each id's answer or its exception.
        Calls refused for the rate are sent again in a later batch, after backoff."""
        answers: dict[str, Any] = {}
        waiting = dict(requests)
        for attempt in range(1, self.app.retry_attempts + 1):
            waiting, retry_after = self._batch_once(user, service, waiting, units, answers)
            if not waiting:
                return answers
            time.sleep(backoff(self.app.retry_wait_seconds, attempt, retry_after))
        for request_id in waiting:
            answers[request_id] = TransientError(f"{user}: still rate limited after {self.app.retry_attempts} attempts")
        return answers

    def _batch_once(self, user: str, service: Resource, waiting: dict[str, HttpRequest], units: int,
                    answers: dict[str, Any]) -> tuple[dict[str, HttpRequest], float]:
        """One batch; the calls refused for the rate come back, with the longest hint among them."""
        again: dict[str, HttpRequest] = {}
        hints = [0.0]

        def take(request_id: str, response: Any, error: Exception | None) -> None:
            if isinstance(error, HttpError) and _is_rate(error):
                again[request_id] = waiting[request_id]
                hints.append(_retry_after(error) or 0.0)
            else:
                answers[request_id] = error if error is not None else response

        batch = BatchHttpRequest(callback=take, batch_uri=self._batch_uri())
        for request_id, request in waiting.items():
            batch.add(request, request_id=request_id)
        self.execute(user, lambda: batch.execute(http=service._http), units * len(waiting))
        return again, max(hints)

    def execute(self, user: str, call: Callable[[], T], units: int) -> T:
        """One call (a request's `execute`, or a batch), paced and retried while a later try can cure it."""
        return retried(self._once, user, call, units, attempts=self.app.retry_attempts,
                       first_wait=self.app.retry_wait_seconds, where=user)

    def _once(self, user: str, call: Callable[[], T], units: int) -> T:
        self.pacer.take(user, units)
        try:
            return call()
        except HttpError as error:
            raise self._mapped(user, error) from None
        except google.auth.exceptions.RefreshError as error:
            raise refused(error, self.client_id(), self.scopes, user) from None
        except google.auth.exceptions.TransportError as error:
            raise Retry(f"token endpoint unreachable ({type(error).__name__})") from None
        except (httplib2.HttpLib2Error, OSError) as error:
            raise Retry(f"connection failed ({type(error).__name__})") from None

    def _mapped(self, user: str, error: HttpError) -> Exception:
        status, reason = error.status_code, _reason(error)
        if reason in RESYNC_REASONS:
            return CursorInvalid(f"{user}: the sync token expired ({reason})")
        if status == 429 or (status == 403 and reason in RATE_REASONS) or status >= 500:
            hint = _retry_after(error)
            if hint is not None and hint > self.app.max_retry_after_seconds:
                return TransientError(f"{user}: rate limited ({reason or status}) for {hint:.0f} s", hint)
            return Retry(f"{'rate limited' if status < 500 else 'server error'} ({status} {reason})", hint)
        message = _message(error)
        if status in (401, 403):
            return AuthError(f"{user}: access denied ({status} {reason}: {message}); in the Admin console, delegate "
                             f"these scopes domain-wide to client {self.client_id()}: {', '.join(self.scopes)}")
        if status == 404:
            return NotFound(f"{user}: not found ({message})")
        return PermanentError(f"{user}: refused ({status} {reason}: {message})")

    def _batch_uri(self) -> str:
        """Where Gmail batches go; google-api-python-client's own batch ignores `api_endpoint`."""
        return f"{(self.app.api_endpoint or 'https://gmail.googleapis.com').rstrip('/')}/batch/gmail/v1"

    def client_id(self) -> str:
        if not self._client_id:
            self._client_id = str(service_account_info(self.app).get("client_id", ""))
        return self._client_id


def _reason(error: HttpError) -> str:
    """The first `reason` of the error body, lower-case: Google's errors carry it in `errors` or in
    `details` (ErrorInfo), and the status alone does not say a rate limit from a refusal."""
    details = error.error_details if isinstance(error.error_details, list) else []
    for detail in details:
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"]).lower()
    return str(error.reason or "").lower() if error.status_code == 404 else ""


def _is_rate(error: HttpError) -> bool:
    return error.status_code == 429 or (error.status_code == 403 and _reason(error) in RATE_REASONS)


def _message(error: HttpError) -> str:
    return str(error.reason or "")[:300]


def _retry_after(error: HttpError) -> float | None:
    """Gmail says when to retry in its message ('Retry after 2026-…Z') rather than a header."""
    header = error.resp.get("retry-after") if error.resp is not None else None
    if header and str(header).replace(".", "", 1).isdigit():
        return float(header)
    found = _RETRY_AFTER.search(_message(error))
    if not found:
        return None
    try:
        when = datetime.fromisoformat(found.group(1).rstrip(".").replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())

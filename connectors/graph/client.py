"""Graph requests as the documented limits allow: per mailbox at most `mailbox_concurrency` in flight
and under `requests_per_10_minutes`, 429 and 503 waited out as `Retry-After` says, other 5xx and
timeouts retried with backoff, and every refusal turned into the connector error that says what
to do next. One requests session per mailbox, so one mailbox's connections never queue another's.

A request that must not be carried out twice (sendMail) is sent with `replay_safe=False`: once it
may have reached the server, a failure is `Unanswered` at once, never a retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import requests

from connectors.errors import AuthError, CursorInvalid, PermanentError, TransientError, Untrusted
from connectors.graph.auth import MsalTokens, http_session
from connectors.graph.settings import GraphApp
from connectors.network import may_have_arrived
from connectors.retrying import Retry, retried

log = logging.getLogger("custody.graph")
WINDOW_SECONDS = 600.0
RETRY_STATUSES = frozenset({500, 502, 503, 504})
_RESYNC_CODES = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})


class NotFound(PermanentError):
    """The mailbox, group or user does not exist (or is not a mailbox)."""


class Unanswered(TransientError):
    """A request that is not safe to repeat may have been carried out, but no answer says so: the
    connection broke or timed out after it was sent, or a gateway gave up waiting for the server."""


class RequestBudget:
    """A sliding window of request times: waits before the request that would exceed the limit."""

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._times and self._times[0] <= now - self.window:
                    self._times.popleft()
                if len(self._times) < self.limit:
                    self._times.append(now)
                    return
                wait = self._times[0] + self.window - now
            log.info("request budget of %d per %.0f s reached; waiting %.1f s", self.limit, self.window, wait)
            time.sleep(wait)


class _Mailbox:
    """What one mailbox (or the directory) gets of its own: a session, a concurrency gate, a budget."""

    def __init__(self, settings: GraphApp) -> None:
        self.session = http_session(settings)
        self.gate = threading.BoundedSemaphore(settings.mailbox_concurrency)
        self.budget = RequestBudget(settings.requests_per_10_minutes)


class GraphClient:
    """GET and POST against one tenant's Graph, by mailbox. `needs` names the application
    permission an endpoint needs, so a 401 or 403 says what the admin must consent to."""

    def __init__(self, settings: GraphApp, tokens: MsalTokens | None = None) -> None:
        self.settings = settings
        self.base = f"{settings.graph_root()}/v1.0"
        self.tokens = tokens or MsalTokens(settings, settings.graph_scope())
        self._mailboxes: dict[str, _Mailbox] = {}
        self._lock = threading.Lock()

    def get(self, mailbox: str, url: str, needs: str, params: dict[str, str] | None = None,
            prefer: tuple[str, ...] = ()) -> dict[str, Any]:
        headers = {"Prefer": ", ".join(prefer)} if prefer else {}
        found: dict[str, Any] = self.request(mailbox, "GET", url, needs, params=params, headers=headers).json()
        return found

    def pages(self, mailbox: str, url: str, needs: str, params: dict[str, str] | None = None,
              prefer: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink` (which carries the query)."""
        next_url: str | None = url
        while next_url:
            page = self.get(mailbox, next_url, needs, params if next_url == url else None, prefer)
            yield from page.get("value", [])
            next_url = page.get("@odata.nextLink")

    def request(self, mailbox: str, method: str, url: str, needs: str, replay_safe: bool = True,
                **options: Any) -> requests.Response:
        """One request, retried while the failure is one a later try can cure; without `replay_safe`,
        only while the server cannot have carried it out (no connection, or a 429 or 503 refusal)."""
        address = url if url.startswith("https://") else f"{self.base}{url}"
        return retried(self._once, self._mailbox(mailbox), method, address, needs, replay_safe, options,
                       attempts=self.settings.retry_attempts, first_wait=self.settings.retry_wait_seconds,
                       where=_where(address))

    def close(self) -> None:
        with self._lock:
            for mailbox in self._mailboxes.values():
                mailbox.session.close()
            self._mailboxes.clear()

    def _once(self, mailbox: _Mailbox, method: str, url: str, needs: str, replay_safe: bool,
              options: dict[str, Any]) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens.token()}", **options.get("headers", {})}
        rest = {name: value for name, value in options.items() if name != "headers"}
        mailbox.budget.take()
        with mailbox.gate:
            try:
                response = mailbox.session.request(method, url, headers=headers, timeout=self.settings.timeout_seconds,
                                                   **rest)
            except requests.exceptions.SSLError as error:
                raise Untrusted(f"{_where(url)}: TLS certificate not trusted ({type(error).__name__})") from None
            except requests.RequestException as error:
                if not replay_safe and may_have_arrived(error):
                    raise Unanswered(f"{_where(url)}: no answer ({type(error).__name__}), so it may have gone through") from None
                raise Retry(f"connection failed ({type(error).__name__})") from None
        return self._checked(response, url, needs, replay_safe)

    def _checked(self, response: requests.Response, url: str, needs: str, replay_safe: bool = True) -> requests.Response:
        status = response.status_code
        if status < 400:
            return response
        code, message = _graph_error(response)
        if not replay_safe and status in RETRY_STATUSES and status != 503:
            raise Unanswered(f"{_where(url)}: server error {status} {code}, so it may have gone through")
        if status == 410 or code.lower() in _RESYNC_CODES:
            raise CursorInvalid(f"{_where(url)}: the delta token is no longer valid ({code})")
        hint = _retry_after(response)
        if status == 429 or (status in RETRY_STATUSES and hint is not None):
            if hint is not None and hint > self.settings.max_retry_after_seconds:
                raise TransientError(f"{_where(url)}: throttled ({code}) for {hint:.0f} s", hint)
            raise Retry(f"throttled ({status} {code})", hint)
        if status in RETRY_STATUSES:
            raise Retry(f"server error {status} {code}")
        if status in (401, 403):
            raise AuthError(f"{_where(url)}: access denied ({status} {code}: {message}); the app needs the "
                            f"application permission {needs}, with admin consent")
        if status == 404:
            raise NotFound(f"{_where(url)}: not found ({code}: {message})")
        raise PermanentError(f"{_where(url)}: refused ({status} {code}: {message})")

    def _mailbox(self, key: str) -> _Mailbox:
        with self._lock:
            if key not in self._mailboxes:
                self._mailboxes[key] = _Mailbox(self.settings)
            return self._mailboxes[key]


def _graph_error(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.reason or ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))[:300]
    return str(error or ""), str(body.get("error_description", ""))[:300] if isinstance(body, dict) else ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _where(url: str) -> str:
    """The URL without its query: delta and skip tokens stay out of messages and logs."""
    return url.split("?", 1)[0]

"""Gmail: each letter through `users.messages.send`, the service account acting as the sending user.

The send is the documented REST call over requests (google-auth's AuthorizedSession), not through
google-api-python-client: its httplib2 posts a request again by itself when the connection drops before
the status line, which would send a letter twice. Once the request may have reached Gmail, a lost
connection (or a 500, 502 or 504) is in doubt at once, never repeated; refusals that say nothing was
accepted (429 and 403 rate limits, 503) are waited out by GoogleClient's pacing, retries and mapping,
the same as every other Google call custody makes.

Whether Gmail keeps a client-set Message-ID on messages.send is not documented, and reports conflict:
some find it kept, some replaced with the original in X-Google-Original-Message-ID, some replaced with
no trace of it. So each letter also carries custody's Message-ID in a header of custody's own
(`MARKER`), and a send left in doubt is looked up two ways: a search `rfc822msgid:` (found once Gmail
has indexed the message, when it kept the id), and the newest `WINDOW` messages labelled SENT, whose
three id headers are compared (each message's headers fetched once per run). The window is what bounds
the lookup: a letter replaced ids hide from search is found only while fewer than `WINDOW` messages
left that mailbox after it.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Collection
from email.message import EmailMessage
from typing import Any

import httplib2
import requests
from google.auth.transport.requests import AuthorizedSession
from googleapiclient.errors import HttpError

from config.sections import GmailSendConfig
from connectors.errors import ConnectorError
from connectors.google.auth import delegated
from connectors.google.client import GoogleClient, NotFound
from connectors.google.settings import LOOKUP_SCOPE, SEND_SCOPE
from connectors.network import may_have_arrived
from daemon.outbox.transports.base import FilingWait, TransportError, refused_send

GMAIL = "https://gmail.googleapis.com"
SCOPES = [SEND_SCOPE, LOOKUP_SCOPE]
"""Never gmail.metadata beside them: a token carrying it is refused search (`q`) whatever else it carries."""
MARKER = "X-Custody-Message-ID"
"""custody's Message-ID again, in a header Gmail has no reason to touch, for when it replaces the Message-ID."""
ID_HEADERS = ("Message-ID", "X-Google-Original-Message-ID", MARKER)
WINDOW = 100
"""How many of the newest sent messages a lookup compares by their headers: one page of messages.list."""
SEND_UNITS, LIST_UNITS, GET_UNITS = 100, 5, 5
IN_DOUBT_STATUSES = frozenset({500, 502, 504})
"""Answers to a send that do not say whether Gmail went on to send it (503 says it did not)."""


class GmailTransport:
    def __init__(self, config: GmailSendConfig) -> None:
        self.config = config
        self.client = GoogleClient(config, SCOPES)
        self.base = f"{(config.api_endpoint or GMAIL).rstrip('/')}/gmail/v1/users/me"
        self._sessions: dict[str, AuthorizedSession] = {}
        self._headers: dict[str, dict[str, frozenset[str]]] = {}
        self._filing = FilingWait(config.sent_copy_wait_seconds)

    def send(self, message: EmailMessage, already: Collection[str] = ()) -> None:
        """One messages.send as the configured mailbox, or else as the sender; the From stays the letter's
        sender either way (from a shared mailbox that needs the address as its Send mail as alias)."""
        mailbox = self._mailbox(message["From"].addresses[0].addr_spec)
        payload = {"raw": base64.urlsafe_b64encode(gmail_raw(message, already)).decode("ascii")}
        try:
            self._call(mailbox, "POST", "/messages/send", SEND_UNITS, replay_safe=False, json=payload)
        except ConnectorError as error:
            raise refused_send(error) from None

    def find_sent(self, message_id: str, sender: str) -> bool | None:
        """Whether the sending mailbox holds the letter, waiting for Gmail's search to index it."""
        mailbox = self._mailbox(sender)
        try:
            return self._filing.found(lambda: self._searched(mailbox, message_id) or self._among_latest(mailbox, message_id))
        except ConnectorError as error:
            raise TransportError(f"cannot look in the sent mail of {mailbox}: {error}", unreachable=True) from None

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        self._headers.clear()
        self._filing.reset()

    def _searched(self, mailbox: str, message_id: str) -> bool:
        """Found by Gmail's search on the Message-ID, also in Trash (a letter deleted after sending was sent)."""
        params = {"q": f"rfc822msgid:{bare(message_id)} in:anywhere", "maxResults": "1"}
        return bool(self._call(mailbox, "GET", "/messages", LIST_UNITS, params=params).get("messages"))

    def _among_latest(self, mailbox: str, message_id: str) -> bool:
        """Found among the newest sent messages by any of its id headers. Listing by label is no search
        (no `q`), and headers never change, so each message's are fetched once per run."""
        params = {"labelIds": "SENT", "includeSpamTrash": "true", "maxResults": str(WINDOW)}
        latest = self._call(mailbox, "GET", "/messages", LIST_UNITS, params=params).get("messages", [])
        known = self._headers.setdefault(mailbox, {})
        for entry in latest:
            if entry["id"] not in known:
                known[entry["id"]] = self._ids_of(mailbox, entry["id"])
            if bare(message_id) in known[entry["id"]]:
                return True
        return False

    def _ids_of(self, mailbox: str, gmail_id: str) -> frozenset[str]:
        params: dict[str, Any] = {"format": "metadata", "metadataHeaders": list(ID_HEADERS)}
        try:
            found = self._call(mailbox, "GET", f"/messages/{gmail_id}", GET_UNITS, params=params)
        except NotFound:
            return frozenset()  # deleted for good since it was listed
        names = {name.lower() for name in ID_HEADERS}
        return frozenset(bare(str(header.get("value", ""))) for header in found.get("payload", {}).get("headers", [])
                         if str(header.get("name", "")).lower() in names)

    def _call(self, mailbox: str, method: str, path: str, units: int, replay_safe: bool = True,
              **options: Any) -> dict[str, Any]:
        """One Gmail call as `mailbox`, paced and retried by GoogleClient. Without `replay_safe`, a call that
        may have been carried out unanswered raises TransportError(in_doubt) past the retries."""
        session = self._session(mailbox)
        url = self.base + path

        def once() -> dict[str, Any]:
            try:
                response = session.request(method, url, timeout=self.config.timeout_seconds, **options)
            except requests.RequestException as error:
                if not replay_safe and may_have_arrived(error):
                    raise TransportError(f"{mailbox}: no answer from Gmail ({type(error).__name__}), so it may have "
                                         "gone out", in_doubt=True) from None
                raise
            if not replay_safe and response.status_code in IN_DOUBT_STATUSES:
                raise TransportError(f"{mailbox}: Gmail answered {response.status_code}, so it may have gone out",
                                     in_doubt=True)
            if response.status_code >= 400:
                raise http_error(response)
            answer: dict[str, Any] = response.json() if response.content else {}
            return answer

        return self.client.execute(mailbox, once, units)

    def _session(self, mailbox: str) -> AuthorizedSession:
        """One session per mailbox, its token acting as that user; google-auth refreshes it when it expires."""
        if mailbox not in self._sessions:
            self._sessions[mailbox] = AuthorizedSession(delegated(self.config, SCOPES, mailbox))
        return self._sessions[mailbox]

    def _mailbox(self, sender: str) -> str:
        return self.config.mailbox or sender


def gmail_raw(message: EmailMessage, already: Collection[str] = ()) -> bytes:
    """The composed message as Gmail gets it: without the recipients `already` reached, with custody's
    Message-ID repeated in `MARKER`, every other header as composed."""
    skip = {address.lower() for address in already}
    raw = copy.deepcopy(message)
    for name in ("To", "Cc", "Bcc"):
        addresses = [address for value in message.get_all(name, []) for address in value.addresses]
        kept = [address for address in addresses if address.addr_spec.lower() not in skip]
        if len(kept) < len(addresses):
            del raw[name]
            if kept:
                raw[name] = kept
    raw[MARKER] = str(message["Message-ID"])
    return raw.as_bytes()


def http_error(response: requests.Response) -> HttpError:
    """A refusal in google-api-python-client's shape, the one GoogleClient's retries and mapping read."""
    answer = httplib2.Response({"status": str(response.status_code), **response.headers})
    answer.reason = response.reason
    return HttpError(answer, response.content, uri=response.url)


def bare(message_id: str) -> str:
    """A Message-ID without its angle brackets, as Gmail's search takes it and headers are compared."""
    return message_id.strip().strip("<>").strip()

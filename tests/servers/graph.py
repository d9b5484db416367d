"""A local fake of Microsoft Graph v1.0 and of the Microsoft identity platform token endpoint.

It speaks HTTPS (msal refuses plain-http authorities) with a trustme CA, serves many tenants from
one server, and answers like the documented API: client-credential tokens (secret or RS256/PS256
certificate assertion), paged delta rounds for users, messages and contacts with skip/delta tokens,
410 on expired sync state, Outlook's per-mailbox concurrency and 10-minute request limits,
sendMail's bodiless 202 and a Sent Items copy without internet headers.

A delta token is a position in a per-collection change log, so replaying an old deltaLink returns
everything changed since it, which is what a connector resuming after a crash does.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

DEFAULT_PERMISSIONS = ("Mail.ReadBasic.All", "Mail.Read", "Contacts.Read", "User.Read.All", "GroupMember.Read.All", "Mail.Send")
WELL_KNOWN_FOLDERS = ("inbox", "sentitems")
FOLDER = r"(?i)/v1\.0/users/([^/]+)/mailFolders(?:/([^/(]+)|\(([^)]+)\))/messages"
JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
MESSAGE_PROPERTIES = tuple((
    "id createdDateTime lastModifiedDateTime changeKey categories receivedDateTime sentDateTime hasAttachments internetMessageId "
    "subject bodyPreview importance parentFolderId conversationId conversationIndex isDeliveryReceiptRequested "
    "isReadReceiptRequested isRead isDraft webLink inferenceClassification body uniqueBody sender from toRecipients "
    "ccRecipients bccRecipients replyTo flag internetMessageHeaders singleValueExtendedProperties multiValueExtendedProperties"
).split())
CONTACT_PROPERTIES = tuple((
    "id createdDateTime lastModifiedDateTime changeKey categories parentFolderId birthday fileAs displayName givenName initials "
    "middleName nickName surname title yomiGivenName yomiSurname yomiCompanyName generation emailAddresses imAddresses jobTitle "
    "companyName department officeLocation profession businessHomePage assistantName manager homePhones mobilePhone "
    "businessPhones homeAddress businessAddress otherAddress spouseName personalNotes children"
).split())
USER_PROPERTIES = tuple((
    "id accountEnabled businessPhones department displayName givenName jobTitle mail mailNickname mobilePhone officeLocation "
    "preferredLanguage proxyAddresses surname userPrincipalName userType manager"
).split())
USER_DEFAULT_SELECT = tuple((
    "businessPhones displayName givenName jobTitle mail mobilePhone officeLocation preferredLanguage surname userPrincipalName id"
).split())
BASIC_HIDDEN = {"body", "uniqueBody", "bodyPreview", "internetMessageHeaders", "singleValueExtendedProperties"}
SPECIAL_MESSAGE_PROPERTIES = {"internetMessageHeaders", "singleValueExtendedProperties", "multiValueExtendedProperties"}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _unb64(token: str) -> dict[str, Any] | None:
    """Decodes a state token; None for anything a client mangled."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


def _outlook_id() -> str:
    return "AAMkA" + base64.urlsafe_b64encode(secrets.token_bytes(36)).decode()


def _change_key() -> str:
    return base64.b64encode(secrets.token_bytes(20)).decode()


def _unquote_odata(text: str) -> str:
    return text.replace("''", "'")


def _property_id_key(property_id: str) -> tuple[str, ...]:
    """Docs: the type and GUID of an extended property id compare case-insensitively, its Name case-sensitively."""
    named = re.fullmatch(r"\s*(\w+)\s+(\{[0-9a-fA-F-]+\})\s+name\s+(.+?)\s*", property_id, re.IGNORECASE)
    if named:
        return named[1].lower(), named[2].lower(), named[3]
    return (property_id.strip().lower(),)


class GraphError(Exception):
    """An answer in Graph's error shape, raised anywhere inside a handler."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class _Collection:
    """Items plus an append-only change log; a delta window over the log is stable while pages are read."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.epoch = 0
        self.items: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[int, str, bool]] = []
        self._windows: dict[tuple[int, int, str], list[str]] = {}

    def window(self, since: int, upto: int, keep: Callable[[dict[str, Any]], bool], keep_key: str) -> list[str]:
        """Ids changed in (since, upto], ordered by last change; a first round (since 0) leaves out removed items."""
        key = (since, upto, keep_key)
        if key not in self._windows:
            last: dict[str, tuple[int, bool]] = {}
            for seq, item_id, removed in self.log:
                if since < seq <= upto:
                    last[item_id] = (seq, removed)
            ordered = sorted(last, key=lambda item_id: last[item_id][0])
            chosen = [i for i in ordered if not (since == 0 and last[i][1]) and (i not in self.items or keep(self.items[i]))]
            if len(self._windows) > 64:
                self._windows.pop(next(iter(self._windows)))
            self._windows[key] = chosen
        return self._windows[key]


class Tenant:
    """One directory with its app registration, users, groups, mailboxes, faults and counters."""

    def __init__(self, server: FakeGraph) -> None:
        self.server = server
        self.tenant_id = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        self.client_secret = secrets.token_urlsafe(30)
        self.private_key_pem, self.certificate_pem, self.thumbprint = _app_certificate(self.client_id)
        self.graph_url, self.ca_file = server.base_url, server.ca_file
        self.authority = f"{server.base_url}/{self.tenant_id}"
        self.token_endpoint = f"{self.authority}/oauth2/v2.0/token"
        self.token_lifetime = 3599
        self.latency_seconds = server.latency_seconds
        self.mailbox_concurrency = server.mailbox_concurrency
        self.mailbox_requests_per_10_minutes = server.mailbox_requests_per_10_minutes
        self.concurrency_retry_after = 1
        self.sent_items_delay_seconds = 0.0
        self.permissions: set[str] = set(DEFAULT_PERMISSIONS)
        self.token_requests = 0
        self.requests: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.max_concurrency_seen: dict[str, int] = defaultdict(int)
        self.sent: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._seq = 0
        self._collections: dict[str, _Collection] = {"users": _Collection("users")}
        self._groups: dict[str, dict[str, Any]] = {}
        self._faults: dict[str, deque[tuple[int, str, str, int]]] = defaultdict(deque)
        self._crash_after_send: set[str] = set()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[float]] = defaultdict(deque)


    def add_user(self, mail: str, display_name: str = "", department: str = "", manager: str | None = None,
                 proxy_addresses: tuple[str, ...] | list[str] = (), enabled: bool = True) -> str:
        user_id = str(uuid.uuid4())
        given, _, surname = display_name.partition(" ")
        user = {
            "id": user_id, "accountEnabled": enabled, "businessPhones": [], "department": department or None,
            "displayName": display_name or mail, "givenName": given or None, "jobTitle": None, "mail": mail,
            "mailNickname": mail.split("@")[0], "mobilePhone": None, "officeLocation": None, "preferredLanguage": None,
            "proxyAddresses": list(proxy_addresses) or [f"SMTP:{mail}"], "surname": surname or None,
            "userPrincipalName": mail, "userType": "Member", "manager": None,
        }
        with self.lock:
            if manager:
                user["manager"] = self._user(manager)["id"]
            self._put("users", user_id, user)
            for folder in WELL_KNOWN_FOLDERS:
                self._collections[f"messages/{user_id}/{folder}"] = _Collection(user_id)
            self._collections[f"contacts/{user_id}"] = _Collection(user_id)
        return user_id

    def update_user(self, mail: str, **changes: Any) -> None:
        names = {"enabled": "accountEnabled", "display_name": "displayName", "proxy_addresses": "proxyAddresses"}
        with self.lock:
            user = dict(self._user(mail))
            for name, value in changes.items():
                if name == "manager":
                    value = self._user(value)["id"] if value else None
                elif name == "proxy_addresses":
                    value = list(value)
                user[names.get(name, name)] = value
            self._put("users", user["id"], user)

    def delete_user(self, mail: str) -> None:
        """A soft delete: the user leaves every group and shows in users/delta as removed with reason 'changed'."""
        with self.lock:
            user_id = self._user(mail)["id"]
            self._remove("users", user_id)
            for group in self._groups.values():
                if user_id in group["members"]:
                    group["members"].remove(user_id)

    def add_group(self, display_name: str, members: list[str] | tuple[str, ...] = ()) -> str:
        group_id = str(uuid.uuid4())
        with self.lock:
            self._groups[group_id] = {"displayName": display_name, "members": [self._user(m)["id"] for m in members]}
        return group_id

    def user_id(self, mail: str) -> str:
        with self.lock:
            return self._user(mail)["id"]


    def add_message(self, mailbox: str, folder: str, message: dict[str, Any]) -> str:
        with self.lock:
            user_id = self._user(mailbox)["id"]
            message_id = _outlook_id()
            created = _iso(_now())
            stored = {
                "createdDateTime": created, "receivedDateTime": created, "sentDateTime": created, "hasAttachments": False,
                "isRead": False, "isDraft": False, "importance": "normal", "conversationId": _outlook_id(),
                "toRecipients": [], "ccRecipients": [], "bccRecipients": [], "replyTo": [], "categories": [],
                "inferenceClassification": "focused", "parentFolderId": f"{user_id}/{folder.lower()}",
                **message, "id": message_id,
            }
            self._put(self._folder(user_id, folder), message_id, stored)
        return message_id

    def update_message(self, mailbox: str, message_id: str, changes: dict[str, Any]) -> None:
        with self.lock:
            collection = self._collection_of(mailbox, message_id, "messages")
            self._put(collection, message_id, {**self._collections[collection].items[message_id], **changes})

    def delete_message(self, mailbox: str, message_id: str) -> None:
        with self.lock:
            self._remove(self._collection_of(mailbox, message_id, "messages"), message_id)

    def sent_items(self, mailbox: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._collections[self._folder(self._user(mailbox)["id"], "sentitems")].items.values())

    def add_contact(self, mailbox: str, contact: dict[str, Any]) -> str:
        with self.lock:
            user_id = self._user(mailbox)["id"]
            contact_id = _outlook_id()
            created = _iso(_now())
            stored = {"createdDateTime": created, "parentFolderId": f"{user_id}/contacts", **contact, "id": contact_id}
            self._put(f"contacts/{user_id}", contact_id, stored)
        return contact_id

    def update_contact(self, mailbox: str, contact_id: str, changes: dict[str, Any]) -> None:
        with self.lock:
            collection = f"contacts/{self._user(mailbox)['id']}"
            self._put(collection, contact_id, {**self._collections[collection].items[contact_id], **changes})

    def delete_contact(self, mailbox: str, contact_id: str) -> None:
        with self.lock:
            self._remove(f"contacts/{self._user(mailbox)['id']}", contact_id)


    def expire_delta_tokens(self, mailbox: str | None = None) -> None:
        """Every outstanding delta and skip token of the mailbox (or of everything) answers 410 afterwards."""
        with self.lock:
            owner = self._user(mailbox)["id"] if mailbox else None
            for collection in self._collections.values():
                if owner is None or collection.owner == owner:
                    collection.epoch += 1

    def throttle(self, mailbox: str, count: int, retry_after_seconds: int = 1) -> None:
        message = "Application is over its MailboxConcurrency limit."
        self._arm(mailbox, count, 429, "ApplicationThrottled", message, retry_after_seconds)

    def fail(self, mailbox: str, count: int, status: int = 503, retry_after_seconds: int = 1) -> None:
        code = {503: "ServiceUnavailable", 504: "GatewayTimeout", 500: "InternalServerError"}.get(status, "UnknownError")
        self._arm(mailbox, count, status, code, "The service is temporarily unavailable.", retry_after_seconds)

    def crash_after_send(self, mailbox: str) -> None:
        """The next sendMail of the mailbox is delivered and filed, then the connection drops unanswered."""
        with self.lock:
            self._crash_after_send.add(self._user(mailbox)["id"])

    def grant(self, *permissions: str) -> None:
        with self.lock:
            self.permissions.update(permissions)

    def revoke(self, *permissions: str) -> None:
        with self.lock:
            self.permissions.difference_update(permissions)

    def revoke_tokens(self) -> None:
        """Access tokens already issued stop working, as after a secret rotation or an admin revocation."""
        self.server.forget_tokens(self)

    def requests_to(self, mailbox: str) -> list[tuple[str, str]]:
        return list(self.requests[mailbox.lower()])


    def _arm(self, mailbox: str, count: int, status: int, code: str, message: str, retry_after: int) -> None:
        with self.lock:
            faults = self._faults[self._user(mailbox)["id"]]
            faults.extend([(status, code, message, retry_after)] * count)

    def _user(self, key: str) -> dict[str, Any]:
        """A user by id, user principal name, mail or proxy address (case-insensitive)."""
        key = key.lower()
        users = self._collections["users"].items
        if key in users:
            return users[key]
        for user in users.values():
            addresses = {user["mail"].lower(), user["userPrincipalName"].lower()}
            addresses.update(a.split(":", 1)[-1].lower() for a in user["proxyAddresses"])
            if key in addresses:
                return user
        raise KeyError(key)

    def _folder(self, user_id: str, folder: str) -> str:
        name = folder.strip("()'").lower()
        if name not in WELL_KNOWN_FOLDERS:
            raise GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.")
        return f"messages/{user_id}/{name}"

    def _collection_of(self, mailbox: str, item_id: str, kind: str) -> str:
        user_id = self._user(mailbox)["id"]
        for name in (f"{kind}/{user_id}/{folder}" for folder in WELL_KNOWN_FOLDERS):
            if item_id in self._collections[name].items:
                return name
        raise KeyError(item_id)

    def _put(self, collection: str, item_id: str, item: dict[str, Any]) -> None:
        self._seq += 1
        target = self._collections[collection]
        if collection != "users":
            item.update(changeKey=_change_key(), lastModifiedDateTime=_iso(_now()))
            item["@odata.etag"] = f'W/"{item["changeKey"]}"'
        target.items[item_id] = item
        target.log.append((self._seq, item_id, False))

    def _remove(self, collection: str, item_id: str) -> None:
        target = self._collections[collection]
        del target.items[item_id]
        self._seq += 1
        target.log.append((self._seq, item_id, True))

    def _admit(self, user_id: str) -> None:
        """Armed faults first, then the 10-minute budget, then a concurrency slot, which _leave gives back."""
        with self.lock:
            if self._faults[user_id]:
                status, code, message, retry_after = self._faults[user_id].popleft()
                raise GraphError(status, code, message, {"Retry-After": str(retry_after)})
            now = time.monotonic()
            recent = self._recent[user_id]
            while recent and recent[0] <= now - 600:
                recent.popleft()
            if len(recent) >= self.mailbox_requests_per_10_minutes:
                wait = max(1, math.ceil(recent[0] + 600 - now))
                raise GraphError(429, "ApplicationThrottled", "Application is over its MailboxRequestLimit limit.",
                                 {"Retry-After": str(wait)})
            if self._in_flight[user_id] >= self.mailbox_concurrency:
                raise GraphError(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                                 {"Retry-After": str(self.concurrency_retry_after)})
            recent.append(now)
            self._in_flight[user_id] += 1
            mail = self._collections["users"].items[user_id]["mail"].lower()
            self.max_concurrency_seen[mail] = max(self.max_concurrency_seen[mail], self._in_flight[user_id])

    def _leave(self, user_id: str) -> None:
        with self.lock:
            self._in_flight[user_id] -= 1


def _app_certificate(client_id: str) -> tuple[str, str, str]:
    """An RSA key and self-signed certificate for the app's certificate credential, with its SHA-1 thumbprint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"app-{client_id}")])
    start = _now() - timedelta(days=1)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(start + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    return private_pem.decode(), cert_pem.decode(), certificate.fingerprint(hashes.SHA1()).hex()  # noqa: S303 (x5t is SHA-1)


class _Request:
    """What a handler needs from one HTTP request."""

    def __init__(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        self.handler = handler
        self.method = method
        parts = urlsplit(handler.path)
        self.path = unquote(parts.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""
        prefer = ",".join(handler.headers.get_all("Prefer") or [])
        self.prefer = {k.strip().lower(): v.strip().strip('"') for k, _, v in (p.partition("=") for p in prefer.split(",")) if k}

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError as error:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from error
        if not isinstance(value, dict):
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
        return value


@dataclass
class _Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without it, each answer waits ~40 ms
    server: _TLSServer

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        answer = self.server.fake.handle(_Request(self, method))
        if answer is None:
            self.close_connection = True
            return
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        self.send_response(answer.status)
        request_id = str(uuid.uuid4())
        for name, value in {"request-id": request_id, "client-request-id": request_id, **answer.headers}.items():
            self.send_header(name, value)
        if answer.body is not None:
            self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        """Requests carry bearer tokens; keep them out of test output."""


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeGraph

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake runs here, in the request's own thread, so a slow client cannot stall accept()."""
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def _error_body(code: str, message: str) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    inner = {"date": _now().strftime("%Y-%m-%dT%H:%M:%S"), "request-id": request_id, "client-request-id": request_id}
    return {"error": {"code": code, "message": message, "innerError": inner}}


def _token_error(status: int, error: str, code: int, description: str) -> _Answer:
    trace, stamp = str(uuid.uuid4()), _now().strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error, "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {uuid.uuid4()} "
        f"Timestamp: {stamp}", "error_codes": [code], "timestamp": stamp, "trace_id": trace,
        "correlation_id": str(uuid.uuid4()), "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return _Answer(status, body)


@lru_cache(maxsize=256)
def _select(raw: str | None, known: tuple[str, ...], type_name: str, directory: bool) -> tuple[str, ...] | None:
    """The canonical property names of a $select, or None without one; unknown names are a 400 as in Graph.
    Cached: every item of a page asks again, and a benchmark should measure the client, not this."""
    if not raw:
        return None
    canonical = {name.lower(): name for name in known}
    chosen = []
    for name in (n.strip() for n in raw.split(",") if n.strip()):
        if name.lower() not in canonical:
            code = "Request_BadRequest" if directory else "RequestBroker--ParseUri"
            raise GraphError(400, code, f"Could not find a property named '{name}' on type '{type_name}'.")
        chosen.append(canonical[name.lower()])
    return tuple(chosen)


def _page_size(request: _Request, default: int, maximum: int) -> int:
    wanted = request.prefer.get("odata.maxpagesize") or request.query.get("$top")
    try:
        return max(1, min(int(wanted), maximum)) if wanted else default
    except ValueError as error:
        raise GraphError(400, "BadRequest", f"Invalid page size '{wanted}'.") from error


def _received_filter(raw: str | None) -> Callable[[dict[str, Any]], bool]:
    """The one $filter messages delta documents: receivedDateTime ge|gt <timestamp>."""
    if not raw:
        return lambda _item: True
    match = re.fullmatch(r"\s*receivedDateTime\s+(ge|gt)\s+'?([0-9TZ:.+-]+)'?\s*", raw, re.IGNORECASE)
    if not match:
        raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
    bound = datetime.fromisoformat(match[2].replace("Z", "+00:00"))
    strict = match[1].lower() == "gt"

    def keep(item: dict[str, Any]) -> bool:
        received = datetime.fromisoformat(str(item.get("receivedDateTime", "")).replace("Z", "+00:00"))
        return received > bound if strict else received >= bound

    return keep


class FakeGraph:
    """The server: start()/stop() or a context manager; tenants come from create_tenant()."""

    def __init__(self, latency_seconds: float = 0.0, mailbox_concurrency: int = 4,
                 mailbox_requests_per_10_minutes: int = 10000, host: str = "127.0.0.1") -> None:
        self.latency_seconds = latency_seconds
        self.mailbox_concurrency = mailbox_concurrency
        self.mailbox_requests_per_10_minutes = mailbox_requests_per_10_minutes
        self.host = host
        self.base_url = ""
        self.ca_file = ""
        self._tenants: dict[str, Tenant] = {}
        self._tokens: dict[str, tuple[Tenant, float]] = {}
        self._lock = threading.Lock()
        self._directory: Path | None = None
        self._http: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., _Answer | None]]] = [
            ("GET", re.compile(r"(?i)/v1\.0/users/(?:microsoft\.graph\.)?delta"), self._users_delta),
            ("GET", re.compile(r"(?i)/v1\.0/users"), self._users_list),
            ("GET", re.compile(r"(?i)/v1\.0/groups/([^/]+)/(?:transitiveMembers|members)/microsoft\.graph\.user"), self._members),
            ("GET", re.compile(FOLDER + r"/(?:microsoft\.graph\.)?delta"), self._messages_delta),
            ("GET", re.compile(FOLDER), self._messages_list),
            ("GET", re.compile(r"(?i)/v1\.0/users/([^/]+)/(?:contactFolders/[^/]+/)?contacts/(?:microsoft\.graph\.)?delta"),
             self._contacts_delta),
            ("POST", re.compile(r"(?i)/v1\.0/users/([^/]+)/sendMail"), self._send_mail),
            ("GET", re.compile(r"(?i)/v1\.0/users/([^/]+)/mailFolders/([A-Za-z]+)"), self._folder_get),
            ("GET", re.compile(r"(?i)/v1\.0/users/([^/]+)/contacts"), self._contacts_list),
            ("GET", re.compile(r"(?i)/v1\.0/users/([^/]+)"), self._user_get),
        ]

    def start(self) -> FakeGraph:
        ca = trustme.CA()
        self._directory = Path(tempfile.mkdtemp(prefix="fake-graph-"))
        self.ca_file = str(self._directory / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._http = _TLSServer((self.host, 0), _Handler)
        self._http.fake = self
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True, do_handshake_on_connect=False)
        self.base_url = f"https://{self.host}:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="fake-graph", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http:
            self._http.shutdown()
            self._http.server_close()
        if self._directory:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def create_tenant(self) -> Tenant:
        tenant = Tenant(self)
        with self._lock:
            self._tenants[tenant.tenant_id] = tenant
        return tenant

    def remove_tenant(self, tenant: Tenant) -> None:
        self.forget_tokens(tenant)
        with self._lock:
            self._tenants.pop(tenant.tenant_id, None)

    def forget_tokens(self, tenant: Tenant) -> None:
        with self._lock:
            for token in [t for t, (owner, _) in self._tokens.items() if owner is tenant]:
                del self._tokens[token]


    def handle(self, request: _Request) -> _Answer | None:
        """Routes one request; None means: drop the connection without an answer."""
        try:
            identity = re.fullmatch(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/token)", request.path)
            if identity:
                return self._identity(request, identity[1], identity[2])
            tenant = self._authenticate(request)
            for method, pattern, route in self._routes:
                match = pattern.fullmatch(request.path.rstrip("/"))
                if match and method == request.method:
                    return route(request, tenant, *match.groups())
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'.")
        except GraphError as error:
            return _Answer(error.status, _error_body(error.code, error.message), error.headers)

    def _identity(self, request: _Request, tenant_id: str, endpoint: str) -> _Answer:
        tenant = self._tenants.get(tenant_id)
        if endpoint.endswith("token"):
            return self._token(request, tenant, tenant_id)
        if tenant is None:
            return _token_error(400, "invalid_tenant", 90002, f"Tenant '{tenant_id}' not found.")
        base = f"{self.base_url}/{tenant.tenant_id}"
        return _Answer(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode", "issuer": f"{base}/v2.0",
            "jwks_uri": f"{base}/discovery/v2.0/keys", "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"], "response_types_supported": ["code", "token"],
            "tenant_region_scope": "EU",
        })

    def _token(self, request: _Request, tenant: Tenant | None, tenant_id: str) -> _Answer:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if tenant is None:
            return _token_error(400, "invalid_request", 90002, f"Tenant '{tenant_id}' not found. Check to make sure you have "
                                "the correct tenant ID and are signing into the correct cloud.")
        with tenant.lock:
            tenant.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return _token_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if not any(scope.endswith("/.default") for scope in form.get("scope", "").split()):
            return _token_error(400, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential "
                                "flows must have a scope value with /.default suffixed to the resource identifier.")
        if form.get("client_id") != tenant.client_id:
            return _token_error(400, "unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' "
                                f"was not found in the directory '{tenant.tenant_id}'.")
        problem = self._client_credential_problem(tenant, form)
        if problem:
            return problem
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = (tenant, time.time() + tenant.token_lifetime)
        lifetime = tenant.token_lifetime
        return _Answer(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token})

    def _client_credential_problem(self, tenant: Tenant, form: dict[str, str]) -> _Answer | None:
        if "client_secret" in form:
            if secrets.compare_digest(form["client_secret"], tenant.client_secret):
                return None
            return _token_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent "
                                "in the request is the client secret value, not the client secret ID, for a secret added to "
                                f"app '{tenant.client_id}'.")
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" or not assertion:
            return _token_error(401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is "
                                "required for the 'client_credentials' grant type.")
        certificate = x509.load_pem_x509_certificate(tenant.certificate_pem.encode())
        try:
            claims = jwt.decode(assertion, certificate.public_key(), algorithms=["RS256", "PS256"],  # type: ignore[arg-type]
                                audience=tenant.token_endpoint, issuer=tenant.client_id, options={"require": ["exp", "sub"]})
        except jwt.PyJWTError as error:
            return _token_error(401, "invalid_client", 700027, f"Client assertion failed signature validation. ({error})")
        if claims["sub"] != tenant.client_id:
            return _token_error(401, "invalid_client", 700021, "Client assertion application identifier doesn't match "
                                "'client_id' parameter.")
        return None

    def _authenticate(self, request: _Request) -> Tenant:
        header = request.handler.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
                     'authorize", client_id="00000003-0000-0000-c000-000000000000"'}
        if scheme.lower() != "bearer" or not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        with self._lock:
            tenant, expires = self._tokens.get(token, (None, 0.0))
        if tenant is None:
            raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).",
                             challenge)
        if expires <= time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", challenge)
        return tenant


    @contextmanager
    def _mailbox(self, tenant: Tenant, key: str, request: _Request, *needed: str) -> Iterator[str]:
        """Resolves the mailbox, counts the request and applies faults, throttling, latency and permissions.

        Yields the user id while holding one of the mailbox's concurrency slots.
        """
        with tenant.lock:
            try:
                user = tenant._user(key)
            except KeyError:
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.") from None
            tenant.requests[user["mail"].lower()].append((request.method, request.path))
        tenant._admit(user["id"])
        try:
            time.sleep(tenant.latency_seconds)
            if not tenant.permissions & set(needed):
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            yield user["id"]
        finally:
            tenant._leave(user["id"])

    def _directory_call(self, tenant: Tenant, request: _Request, *needed: str) -> None:
        with tenant.lock:
            tenant.requests[""].append((request.method, request.path))
        time.sleep(tenant.latency_seconds)
        if not any(permission in tenant.permissions for permission in needed):
            raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

    def _next_link(self, request: _Request, token_name: str, payload: dict[str, Any]) -> str:
        path = quote(request.path, safe="/@()'")
        return f"{self.base_url}{path}?{token_name}={_b64(payload)}"

    def _delta(self, request: _Request, tenant: Tenant, collection_name: str, kind: str, default: int, maximum: int,
               render: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]], tombstone: Callable[[str], dict[str, Any]],
               keep_factory: Callable[[dict[str, Any]], Callable[[dict[str, Any]], bool]]) -> _Answer:
        """One page of a delta round: skiptoken continues a round, deltatoken starts the next, neither starts afresh."""
        raw = request.query.get("$skiptoken") or request.query.get("$deltatoken")
        with tenant.lock:
            collection = tenant._collections[collection_name]
            if raw:
                state = _unb64(raw)
                if state is None or state.get("t") != tenant.tenant_id or state.get("c") != collection_name:
                    raise GraphError(400, "BadRequest", "The delta token is malformed or belongs to another collection.")
                if state.get("e") != collection.epoch:
                    code = "syncStateNotFound" if kind == "users" else "SyncStateNotFound"
                    raise GraphError(410, code, "The sync state generation is not found. The delta token is expired and "
                                     "data must be synchronized again.")
                params = state["q"]
                since, upto, offset = (state["s"], state["u"], state["o"]) if "$skiptoken" in request.query else \
                    (state["s"], tenant._seq, 0)
            else:
                params = {k: request.query[k] for k in ("$select", "$expand", "$filter") if k in request.query}
                since, upto, offset = 0, tenant._seq, 0
            keep = keep_factory(params)
            ids = collection.window(since, upto, keep, params.get("$filter", ""))
            size = _page_size(request, default, maximum)
            chunk = ids[offset:offset + size]
            page = [render(collection.items[i], params) if i in collection.items else tombstone(i) for i in chunk]
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#Collection({kind})"}
        cursor = {"t": tenant.tenant_id, "c": collection_name, "e": collection.epoch, "q": params, "s": since, "u": upto}
        if offset + size < len(ids):
            body["@odata.nextLink"] = self._next_link(request, "$skiptoken", {**cursor, "o": offset + size})
        else:
            body["@odata.deltaLink"] = self._next_link(request, "$deltatoken", {**cursor, "s": upto})
        body["value"] = page
        return _Answer(200, body, self._preference_applied(request, size))

    def _preference_applied(self, request: _Request, size: int) -> dict[str, str]:
        applied = []
        if "odata.maxpagesize" in request.prefer:
            applied.append(f"odata.maxpagesize={size}")
        if request.prefer.get("idtype", "").lower() == "immutableid":
            applied.append('IdType="ImmutableId"')
        return {"Preference-Applied": ", ".join(applied)} if applied else {}

    def _paged_list(self, request: _Request, items: list[dict[str, Any]], default: int, maximum: int, context: str) -> _Answer:
        state = _unb64(request.query.get("$skiptoken", "")) or {"o": 0}
        size = _page_size(request, default, maximum)
        offset = int(state["o"])
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#{context}"}
        if offset + size < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            extra = "".join(f"&{quote(k)}={quote(v)}" for k, v in query.items())
            body["@odata.nextLink"] = self._next_link(request, "$skiptoken", {"o": offset + size}) + extra
        body["value"] = items[offset:offset + size]
        return _Answer(200, body, self._preference_applied(request, size))


    def _render_user(self, user: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        chosen = _select(params.get("$select"), USER_PROPERTIES, "microsoft.graph.user", True) or USER_DEFAULT_SELECT
        entry = {name: user.get(name) for name in chosen if name not in ("id", "manager")}
        if "manager" in chosen or "manager" in params.get("$expand", "").lower():
            entry["manager@delta"] = [{"@odata.type": "#microsoft.graph.user", "id": user["manager"]}] if user["manager"] else []
        entry["id"] = user["id"]
        return entry

    def _users_delta(self, request: _Request, tenant: Tenant) -> _Answer:
        self._directory_call(tenant, request, "User.Read.All", "Directory.Read.All")
        _select(request.query.get("$select"), USER_PROPERTIES, "microsoft.graph.user", True)
        return self._delta(request, tenant, "users", "users", 200, 200, self._render_user,
                           lambda user_id: {"id": user_id, "@removed": {"reason": "changed"}}, lambda _params: lambda _u: True)

    def _users_list(self, request: _Request, tenant: Tenant) -> _Answer:
        self._directory_call(tenant, request, "User.Read.All", "Directory.Read.All")
        wanted = request.query.get("$filter")
        if wanted and not re.fullmatch(r"\s*accountEnabled\s+eq\s+true\s*", wanted, re.IGNORECASE):
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        with tenant.lock:
            users = [u for u in tenant._collections["users"].items.values() if u["accountEnabled"] or not wanted]
            values = [self._plain_user(u, request.query) for u in users]
        return self._paged_list(request, values, 100, 999, "users")

    def _plain_user(self, user: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        entry = self._render_user(user, {"$select": query.get("$select", "")})
        entry.pop("manager@delta", None)
        return entry

    def _user_get(self, request: _Request, tenant: Tenant, key: str) -> _Answer:
        self._directory_call(tenant, request, "User.Read.All", "Directory.Read.All")
        with tenant.lock:
            try:
                user = tenant._user(key)
            except KeyError:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its queried "
                                 "reference-property objects are not present.") from None
            return _Answer(200, self._plain_user(user, request.query))

    def _folder_get(self, request: _Request, tenant: Tenant, key: str, folder: str) -> _Answer:
        with self._mailbox(tenant, key, request, "Mail.ReadBasic.All", "Mail.Read") as user_id:
            with tenant.lock:
                items = tenant._collections[tenant._folder(user_id, folder)].items
                return _Answer(200, {"id": _outlook_id(), "displayName": folder.title(), "totalItemCount": len(items)})

    def _contacts_list(self, request: _Request, tenant: Tenant, key: str) -> _Answer:
        with self._mailbox(tenant, key, request, "Contacts.Read", "Contacts.ReadWrite") as user_id:
            with tenant.lock:
                values = [{"id": c["id"]} for c in tenant._collections[f"contacts/{user_id}"].items.values()]
            return self._paged_list(request, values, 10, 1000, "Collection(contact)")

    def _members(self, request: _Request, tenant: Tenant, group_id: str) -> _Answer:
        self._directory_call(tenant, request, "GroupMember.Read.All", "Group.Read.All", "Directory.Read.All")
        with tenant.lock:
            group = tenant._groups.get(group_id)
            if group is None:
                raise GraphError(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist or one of its queried "
                                 "reference-property objects are not present.")
            users = tenant._collections["users"].items
            values = [{"@odata.type": "#microsoft.graph.user", **self._plain_user(users[m], request.query)}
                      for m in group["members"] if m in users]
        return self._paged_list(request, values, 100, 999, "users")


    def _render_message(self, tenant: Tenant, message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        chosen = _select(params.get("$select"), MESSAGE_PROPERTIES, "Microsoft.OutlookServices.Message", False)
        names = chosen if chosen is not None else [k for k in message if k not in SPECIAL_MESSAGE_PROPERTIES and k[0] != "@"]
        if "Mail.Read" not in tenant.permissions:
            names = [n for n in names if n not in BASIC_HIDDEN]
        entry = {"@odata.type": "#microsoft.graph.message", "@odata.etag": message["@odata.etag"]}
        entry.update({name: message.get(name) for name in names if name not in ("id", "singleValueExtendedProperties")})
        expanded = re.search(r"singleValueExtendedProperties\(\s*\$filter=\(?\s*id\s+eq\s+'((?:[^']|'')*)'\s*\)?\s*\)",
                             params.get("$expand", ""), re.IGNORECASE)
        if expanded and "Mail.Read" in tenant.permissions:
            key = _property_id_key(_unquote_odata(expanded[1]))
            matching = [p for p in message.get("singleValueExtendedProperties", []) if _property_id_key(p["id"]) == key]
            if matching:
                entry["singleValueExtendedProperties"] = matching
        entry["id"] = message["id"]
        return entry

    def _messages_delta(self, request: _Request, tenant: Tenant, key: str, folder: str | None, quoted: str | None) -> _Answer:
        with self._mailbox(tenant, key, request, "Mail.ReadBasic.All", "Mail.Read") as user_id:
            collection = tenant._folder(user_id, folder or quoted or "")
            if not request.query.get("$skiptoken") and not request.query.get("$deltatoken"):
                _select(request.query.get("$select"), MESSAGE_PROPERTIES, "Microsoft.OutlookServices.Message", False)
            return self._delta(request, tenant, collection, "message", 10, 1000,
                               lambda m, p: self._render_message(tenant, m, p),
                               lambda i: {"@odata.type": "#microsoft.graph.message", "id": i, "@removed": {"reason": "deleted"}},
                               lambda params: _received_filter(params.get("$filter")))

    def _messages_list(self, request: _Request, tenant: Tenant, key: str, folder: str | None, quoted: str | None) -> _Answer:
        with self._mailbox(tenant, key, request, "Mail.ReadBasic.All", "Mail.Read") as user_id:
            collection = tenant._folder(user_id, folder or quoted or "")
            wanted = request.query.get("$filter", "")
            if "extendedproperties" in wanted.lower() and "Mail.Read" not in tenant.permissions:
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            matches = _message_filter(wanted)
            params = {k: request.query[k] for k in ("$select", "$expand") if k in request.query}
            with tenant.lock:
                found = [m for m in tenant._collections[collection].items.values() if matches(m)]
                found.sort(key=lambda m: str(m.get("receivedDateTime")), reverse=True)
                values = [self._render_message(tenant, m, params) for m in found]
            return self._paged_list(request, values, 10, 1000, "Collection(message)")

    def _contacts_delta(self, request: _Request, tenant: Tenant, key: str) -> _Answer:
        with self._mailbox(tenant, key, request, "Contacts.Read", "Contacts.ReadWrite") as user_id:
            if not request.query.get("$skiptoken") and not request.query.get("$deltatoken"):
                _select(request.query.get("$select"), CONTACT_PROPERTIES, "Microsoft.OutlookServices.Contact", False)

            def render(contact: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
                chosen = _select(params.get("$select"), CONTACT_PROPERTIES, "Microsoft.OutlookServices.Contact", False)
                names = chosen if chosen is not None else [k for k in contact if k[0] != "@"]
                entry = {"@odata.type": "#microsoft.graph.contact", "@odata.etag": contact["@odata.etag"]}
                entry.update({name: contact.get(name) for name in names if name != "id"})
                return {**entry, "id": contact["id"]}

            return self._delta(request, tenant, f"contacts/{user_id}", "contact", 200, 200, render,
                               lambda i: {"@odata.type": "#microsoft.graph.contact", "id": i, "@removed": {"reason": "deleted"}},
                               lambda _params: lambda _c: True)

    def _send_mail(self, request: _Request, tenant: Tenant, key: str) -> _Answer | None:
        with self._mailbox(tenant, key, request, "Mail.Send") as user_id:
            body = request.json()
            message = body.get("message")
            if not isinstance(message, dict):
                raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
            recipients = [r for kind in ("toRecipients", "ccRecipients", "bccRecipients") for r in message.get(kind) or []]
            if not recipients or any(not (r.get("emailAddress") or {}).get("address") for r in recipients):
                raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
            for header in message.get("internetMessageHeaders") or []:
                if not str(header.get("name", "")).lower().startswith("x-"):
                    raise GraphError(400, "InvalidInternetMessageHeader", f"The internet message header name "
                                     f"'{header.get('name')}' should start with 'x-' or 'X-'.")
            with tenant.lock:
                user = tenant._collections["users"].items[user_id]
                delivered = _delivered(user, message)
                tenant.sent.append(delivered)
                crash = user_id in tenant._crash_after_send
                tenant._crash_after_send.discard(user_id)
            if body.get("saveToSentItems", True) not in (False, "false", "False"):
                self._file_sent_copy(tenant, user["mail"], delivered)
            return None if crash else _Answer(202)

    def _file_sent_copy(self, tenant: Tenant, mailbox: str, delivered: dict[str, Any]) -> None:
        """Exchange files the Sent Items copy asynchronously and without the x- internet headers."""
        copy = {k: v for k, v in delivered.items() if k not in ("id", "internetMessageHeaders")}
        copy["isRead"] = True
        if tenant.sent_items_delay_seconds > 0:
            timer = threading.Timer(tenant.sent_items_delay_seconds, tenant.add_message, (mailbox, "sentitems", copy))
            timer.daemon = True
            timer.start()
        else:
            tenant.add_message(mailbox, "sentitems", copy)


def _delivered(user: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The message as it left the mailbox: sender fields, times and ids filled in the way Exchange does."""
    now = _iso(_now())
    own = {"emailAddress": {"name": user["displayName"], "address": user["mail"]}}
    domain = user["mail"].rsplit("@", 1)[-1]
    return {
        "toRecipients": [], "ccRecipients": [], "bccRecipients": [], "replyTo": [], **message,
        "id": _outlook_id(), "from": message.get("from") or own, "sender": own, "sentDateTime": now, "receivedDateTime": now,
        "internetMessageId": message.get("internetMessageId") or f"<{uuid.uuid4().hex}@{domain}>",
        "conversationId": _outlook_id(), "isDraft": False,
    }


def _message_filter(raw: str) -> Callable[[dict[str, Any]], bool]:
    """The two $filter forms an in-doubt lookup needs: an extended property's value, or internetMessageId."""
    if not raw:
        return lambda _m: True
    quoted = r"'((?:[^']|'')*)'"
    extended = re.fullmatch(rf"\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+{quoted}\s+and\s+"
                            rf"\1/value\s+eq\s+{quoted}\s*\)\s*", raw, re.IGNORECASE)
    if extended:
        key, value = _property_id_key(_unquote_odata(extended[2])), _unquote_odata(extended[3]).lower()
        return lambda m: any(_property_id_key(p.get("id", "")) == key and str(p.get("value", "")).lower() == value
                             for p in m.get("singleValueExtendedProperties") or [])
    message_id = re.fullmatch(rf"\s*internetMessageId\s+eq\s+{quoted}\s*", raw, re.IGNORECASE)
    if message_id:
        wanted = _unquote_odata(message_id[1])
        return lambda m: m.get("internetMessageId") == wanted
    raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")


@pytest.fixture(scope="session")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


@pytest.fixture
def graph_tenant(graph_server: FakeGraph) -> Iterator[Tenant]:
    tenant = graph_server.create_tenant()
    yield tenant
    graph_server.remove_tenant(tenant)

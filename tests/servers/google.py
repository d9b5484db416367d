"""A local fake of Google's OAuth token endpoint, the Gmail API, the People API and the Admin SDK Directory API.

The real google-auth and google-api-python-client talk to it unchanged: plain HTTP on 127.0.0.1 (the
client library accepts an http `api_endpoint`, google-auth an http `token_uri`), one server for many
workspaces, each with a service account whose JSON key drives the domain-wide-delegation JWT grant.

It answers like the documented APIs and like captured real traffic where the two differ:
- scopes per method come from the client library's own discovery documents; a token carrying
  gmail.metadata cannot use `q` or format FULL/RAW even beside gmail.readonly (a known Gmail quirk);
- per-user quota of 15,000 units per rolling minute at the documented cost per method, answered with
  the 429 `rateLimitExceeded` real traffic shows; armed faults for 403 `userRateLimitExceeded` and 5xx;
- Gmail history ids grow with random gaps, an expired startHistoryId is a 404, a People sync token
  expires into a 400 FAILED_PRECONDITION carrying an ErrorInfo with reason EXPIRED_SYNC_TOKEN;
- the batch endpoint takes at most 100 calls, runs them concurrently and charges each one;
- messages.send keeps a well-formed client Message-ID unless `replace_message_ids` is set, and a send
  can be made to deliver and then drop its connection unanswered (`crash_after_send`).
"""

from __future__ import annotations

import base64
import binascii
import html
import itertools
import json
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property, lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import googleapiclient
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SCOPE = "https://www.googleapis.com/auth/"
METADATA_SCOPE = SCOPE + "gmail.metadata"
DEFAULT_DELEGATION = tuple(SCOPE + name for name in (
    "gmail.metadata", "gmail.readonly", "gmail.send", "contacts.readonly", "contacts.other.readonly",
    "admin.directory.user.readonly", "admin.directory.group.member.readonly"))
PUBLIC_TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USER_UNITS_PER_MINUTE = 15_000
QUOTA_UNITS = {"gmail.users.getProfile": 1, "gmail.users.messages.list": 5, "gmail.users.messages.get": 5,
               "gmail.users.history.list": 2, "gmail.users.messages.send": 100}
BATCH_LIMIT = 100
HISTORY_TYPES = {"messageAdded": "messagesAdded", "messageDeleted": "messagesDeleted",
                 "labelAdded": "labelsAdded", "labelRemoved": "labelsRemoved"}
DOCS = "https://developers.google.com/people/api/rest/v1/people/get"
SHORT_LIVED = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and "
               "exp values in the JWT claim.")
_COUNTER = itertools.count(secrets.randbelow(1 << 16))


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _gmail_id() -> str:
    """Gmail ids are 16 hex digits that grow with time."""
    return f"{(time.time_ns() // 1_000_000) << 20 | next(_COUNTER) & 0xFFFFF:016x}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _state(payload: dict[str, Any]) -> str:
    return _b64url(json.dumps(payload, separators=(",", ":")).encode())


def _unstate(token: str) -> dict[str, Any] | None:
    """Decodes a page or sync token; None for anything a client mangled."""
    try:
        value = json.loads(_unb64url(token))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


@lru_cache(maxsize=3)
def _discovery(name: str) -> dict[str, Any]:
    """One of the discovery documents google-api-python-client ships with: the paths, parameters and scopes it uses."""
    return json.loads((Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / name).read_text())


@lru_cache(maxsize=1)
def _method_scopes() -> dict[str, frozenset[str]]:
    """Method id -> the scopes any one of which may call it."""
    scopes: dict[str, frozenset[str]] = {}

    def walk(resources: dict[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                scopes[method["id"]] = frozenset(method.get("scopes", ()))
            walk(resource.get("resources", {}))

    for name in ("gmail.v1.json", "people.v1.json", "admin.directory_v1.json"):
        walk(_discovery(name)["resources"])
    return scopes


@lru_cache(maxsize=1)
def _person_fields() -> frozenset[str]:
    """The personFields values the People discovery document lists as valid."""
    people = _discovery("people.v1.json")["resources"]["people"]
    description = people["resources"]["connections"]["methods"]["list"]["parameters"]["personFields"]["description"]
    return frozenset(re.findall(r"\* (\w+)", description))


class GoogleError(Exception):
    """An answer in Google's JSON error shape, raised anywhere inside a handler.

    Gmail and the Directory API still send the legacy `errors` list; the People API sends `details` only.
    """

    STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}

    def __init__(self, code: int, reason: str, message: str, *, domain: str = "global", status: str = "",
                 details: list[dict[str, Any]] | None = None, legacy: bool = True,
                 extra: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.headers = code, headers or {}
        error: dict[str, Any] = {"code": code, "message": message}
        if legacy:
            error["errors"] = [{"message": message, "domain": domain, "reason": reason, **(extra or {})}]
        error["status"] = status or self.STATUS.get(code, "UNKNOWN")
        if details:
            error["details"] = details
        self.body = {"error": error}

    def answer(self) -> _Answer:
        return _Answer(self.code, self.body, headers=self.headers)


def _bad_request(message: str, reason: str = "invalidArgument") -> GoogleError:
    return GoogleError(400, reason, message)


def _forbidden(message: str) -> GoogleError:
    return GoogleError(403, "forbidden", message)


def _not_found(message: str = "Requested entity was not found.") -> GoogleError:
    return GoogleError(404, "notFound", message)


def _unauthenticated(missing: bool) -> GoogleError:
    realm = 'Bearer realm="https://accounts.google.com/"'
    challenge = {"WWW-Authenticate": realm if missing else realm + ', error="invalid_token"'}
    prefix = "Request is missing required" if missing else "Request had invalid"
    message = (f"{prefix} authentication credential{'' if missing else 's'}. Expected OAuth 2 access token, login cookie "
               "or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
    return GoogleError(401, "required" if missing else "authError", message, headers=challenge,
                       extra={"message": "Login Required." if missing else "Invalid Credentials",
                              "location": "Authorization", "locationType": "header"})


def _insufficient_scope(method_id: str) -> GoogleError:
    service = {"gmail": "gmail", "people": "people", "directory": "admin"}[method_id.split(".")[0]] + ".googleapis.com"
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com", "metadata": {"service": service, "method": method_id}}
    challenge = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="insufficient_scope", '
                 f'scope="{" ".join(sorted(_method_scopes()[method_id]))}"'}
    error = GoogleError(403, "insufficientPermissions", "Request had insufficient authentication scopes.",
                        details=[info], headers=challenge)
    error.body["error"]["errors"][0]["message"] = "Insufficient Permission"
    return error


def _rate_limited(status: int, reason: str, retry_at: datetime) -> GoogleError:
    if status == 403:
        return GoogleError(403, reason, "User Rate Limit Exceeded", domain="usageLimits")
    return GoogleError(429, reason, f"User-rate limit exceeded.  Retry after {_rfc3339(retry_at)}")


def _unavailable(status: int) -> GoogleError:
    message = "The service is currently unavailable." if status == 503 else "Backend Error"
    return GoogleError(status, "backendError", message)


@dataclass
class _Answer:
    status: int
    body: dict[str, Any] | bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body, indent=2).encode()


class _Request:
    """What a handler needs from one HTTP request, or from one call inside a batch (which inherits the outer headers)."""

    def __init__(self, method: str, target: str, headers: Message, body: bytes, outer: _Request | None = None) -> None:
        parts = urlsplit(target)
        self.method, self.path, self.body, self.outer = method.upper(), unquote(parts.path).rstrip("/"), body, outer
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers

    def header(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None and self.outer is not None and not name.lower().startswith("content-"):
            return self.outer.header(name)
        return str(value or "")

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def many(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def flag(self, name: str) -> bool:
        return (self.one(name) or "false").lower() == "true"

    def number(self, name: str, default: int, top: int, clamp: bool) -> int:
        """A bounded integer parameter: Gmail clamps oversized page sizes, People and Directory reject them."""
        raw = self.one(name)
        try:
            value = int(raw) if raw not in (None, "") else default
        except ValueError:
            raise _bad_request(f"Invalid value '{raw}'. Values must be within the range: [1, {top}]") from None
        if clamp:
            return max(1, min(value, top))
        if not 1 <= value <= top:
            raise _bad_request(f"Invalid value '{raw}'. Values must be within the range: [1, {top}]")
        return value

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise _bad_request("Invalid JSON payload received.")
        return value


def _offset(request: _Request) -> int:
    token = request.one("pageToken")
    if not token:
        return 0
    state = _unstate(token)
    if state is None or not isinstance(state.get("o"), int):
        raise _bad_request("Invalid pageToken")
    return state["o"]


def _page(items: list[Any], offset: int, size: int) -> tuple[list[Any], str | None]:
    """One page of a list and the token of the next, if any."""
    more = offset + size < len(items)
    return items[offset:offset + size], _state({"o": offset + size}) if more else None


def _header_value(raw: str) -> str:
    """Unfolded and RFC 2047-decoded, as the Gmail API returns header values."""
    value = re.sub(r"\r?\n(?=[ \t])", "", raw.encode("ascii", "surrogateescape").decode("utf-8", "replace"))
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _header_block(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Headers, the blank-line separator and the body of a raw message."""
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b"\r\n\r\n", b""
    return raw[:match.start()], raw[match.start():match.end()], raw[match.end():]


def _rewrite_headers(raw: bytes, drop: set[str], add: list[tuple[str, str]]) -> bytes:
    """The raw message with the named header fields (and their folded lines) removed and new ones prepended."""
    head, separator, body = _header_block(raw)
    newline = b"\r\n" if b"\r\n" in head or not head else b"\n"
    kept: list[bytes] = []
    skipping = False
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower() in drop
        if not skipping:
            kept.append(line)
    added = [f"{name}: {value}".encode() for name, value in add]
    return newline.join(added + kept) + separator + body


def _message_id_of(value: str) -> str:
    return value.strip().strip("<>").strip()


class _Message:
    """One stored message; headers are parsed once, the snippet only when a client first asks for it."""

    def __init__(self, message_id: str, thread_id: str, raw: bytes, labels: list[str]) -> None:
        self.id, self.thread_id, self.raw, self.labels = message_id, thread_id, raw, labels
        parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
        self.headers = [(name, _header_value(value)) for name, value in parsed.raw_items()]
        self.mime_type = parsed.get_content_type()
        self.internal_date = self._date(parsed.get("Date"))
        self.rfc_id = _message_id_of(self.header("Message-ID"))
        self.history_id = 0
        self.added = time.monotonic()

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")

    @staticmethod
    def _date(value: str | None) -> int:
        """internalDate in ms: the Date header when it parses (as for imported mail), else now."""
        try:
            moment = parsedate_to_datetime(str(value))
        except (TypeError, ValueError, IndexError):
            return time.time_ns() // 1_000_000
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)

    @cached_property
    def snippet(self) -> str:
        parsed = BytesParser(policy=compat32).parsebytes(self.raw)
        part = next((p for p in parsed.walk() if p.get_content_type() == "text/plain"), None)
        data = part.get_payload(decode=True) if part is not None else b""
        text = " ".join((data if isinstance(data, bytes) else b"").decode("utf-8", "replace").split())
        return html.escape(text[:200]).replace("&#x27;", "&#39;")

    def summary(self, labels: bool = True) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "threadId": self.thread_id}
        if labels:
            entry["labelIds"] = list(self.labels)
        return entry


def _payload(part: Message, part_id: str) -> dict[str, Any]:
    """format=FULL: the parsed MIME tree with base64url body data."""
    entry: dict[str, Any] = {"partId": part_id, "mimeType": part.get_content_type(), "filename": part.get_filename() or "",
                             "headers": [{"name": k, "value": _header_value(v)} for k, v in part.raw_items()]}
    if part.is_multipart():
        entry["body"] = {"size": 0}
        children = part.get_payload()
        entry["parts"] = [_payload(child, f"{part_id}.{n}" if part_id else str(n)) for n, child in enumerate(children)]
    else:
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        entry["body"] = {"size": len(data), "data": _b64url(data)} if data else {"size": 0}
    return entry


@dataclass
class _Mailbox:
    """One user's Gmail mailbox and contacts, with the per-user quota, faults and concurrency counters."""

    messages: dict[str, _Message] = field(default_factory=dict)
    by_rfc_id: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    history_id: int = field(default_factory=lambda: 1000 + secrets.randbelow(100_000))
    history_floor: int = 0
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    contact_log: list[tuple[int, str]] = field(default_factory=list)
    contact_seq: int = 0
    sync_epoch: int = 0
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    spent_total: int = 0
    faults: deque[GoogleError] = field(default_factory=deque)
    crash_after_send: bool = False
    in_flight: int = 0


@dataclass
class _Grant:
    """What an access token stands for: the workspace, the impersonated user (None: the service account) and scopes."""

    workspace: Workspace
    user: str | None
    scopes: frozenset[str]
    expires: float


class Workspace:
    """One Google Workspace customer: a service account, users, groups, mailboxes, contacts, faults and counters."""

    def __init__(self, server: FakeGoogle, domain: str) -> None:
        self.server, self.domain = server, domain.lower()
        self.customer_id = "C0" + secrets.token_hex(4)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key()
        project = f"custody-fake-{secrets.token_hex(3)}"
        email = f"custody-connector@{project}.iam.gserviceaccount.com"
        self.service_account_info: dict[str, str] = {
            "type": "service_account", "project_id": project, "private_key_id": secrets.token_hex(20),
            "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "client_email": email, "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": f"{server.base_url}/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{quote(email)}",
            "universe_domain": "googleapis.com",
        }
        self.client_email = email
        self.token_lifetime = 3599
        self.latency_seconds = server.latency_seconds
        self.units_per_minute = USER_UNITS_PER_MINUTE
        self.user_concurrency: int | None = None
        self.search_delay_seconds = 0.0
        self.replace_message_ids = False
        self.delegated: set[str] = set(DEFAULT_DELEGATION)
        self.token_requests = 0
        self.requests: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.units: dict[str, int] = defaultdict(int)
        self.max_concurrency_seen: dict[str, int] = defaultdict(int)
        self.sent: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._deleted: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._mailboxes: dict[str, _Mailbox] = {}

    # Directory data

    def add_user(self, email: str, name: str = "", department: str = "", manager: str | None = None,
                 aliases: tuple[str, ...] | list[str] = (), suspended: bool = False, archived: bool = False,
                 admin: bool = False) -> str:
        user_id = str(10**20 + secrets.randbelow(9 * 10**20))
        with self.lock:
            self._users[email.lower()] = {
                "id": user_id, "primaryEmail": email.lower(), "name": name, "department": department,
                "manager": self._user(manager)["primaryEmail"] if manager else None, "aliases": [a.lower() for a in aliases],
                "suspended": suspended, "archived": archived, "isAdmin": admin, "creationTime": _rfc3339(_now()),
                "etag": secrets.token_urlsafe(12),
            }
            self._mailboxes[email.lower()] = _Mailbox()
        return user_id

    def update_user(self, email: str, **changes: Any) -> None:
        """Changes name, department, manager (an email or None), aliases, suspended, archived or admin."""
        unknown = set(changes) - {"name", "department", "manager", "aliases", "suspended", "archived", "admin"}
        if unknown:
            raise TypeError(f"update_user cannot change {sorted(unknown)}")
        with self.lock:
            user = self._user(email)
            for key, value in changes.items():
                if key == "manager":
                    value = self._user(value)["primaryEmail"] if value else None
                elif key == "aliases":
                    value = [a.lower() for a in value]
                user["isAdmin" if key == "admin" else key] = value
            user["etag"] = secrets.token_urlsafe(12)

    def delete_user(self, email: str) -> None:
        """The user leaves every group, the mailbox goes, and the directory lists it only with showDeleted=true."""
        with self.lock:
            user = self._users.pop(self._user(email)["primaryEmail"])
            self._deleted[user["primaryEmail"]] = {**user, "deletionTime": _rfc3339(_now())}
            self._mailboxes.pop(user["primaryEmail"], None)
            for group in self._groups.values():
                group["members"] = [m for m in group["members"] if m != user["primaryEmail"]]

    def add_group(self, email: str, members: list[str] | tuple[str, ...] = (), name: str = "") -> str:
        """Members are user or group emails; a group member makes includeDerivedMembership meaningful."""
        group_id = secrets.token_hex(8)
        with self.lock:
            self._groups[group_id] = {"id": group_id, "email": email.lower(), "name": name or email,
                                      "members": [m.lower() for m in members]}
        return group_id

    def _user(self, key: str) -> dict[str, Any]:
        """A live user by primary email, alias or id (case-insensitive)."""
        key = key.lower()
        if key in self._users:
            return self._users[key]
        for user in self._users.values():
            if key == user["id"] or key in user["aliases"]:
                return user
        raise KeyError(key)

    def _box(self, email: str) -> _Mailbox:
        return self._mailboxes[self._user(email)["primaryEmail"]]

    # Gmail data

    def add_message(self, user: str, raw: bytes, labels: tuple[str, ...] | list[str] = ("INBOX",)) -> str:
        """Stores a message as delivered or imported mail; internalDate comes from its Date header."""
        with self.lock:
            return self._store(self._box(user), raw, list(labels)).id

    def relabel(self, user: str, message_id: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
        with self.lock:
            box = self._box(user)
            message = box.messages[message_id]
            added = [label for label in add if label not in message.labels]
            removed = [label for label in remove if label in message.labels]
            message.labels = [label for label in message.labels if label not in removed] + added
            if added:
                self._record(box, "labelsAdded", message, added)
            if removed:
                self._record(box, "labelsRemoved", message, removed)

    def delete_message(self, user: str, message_id: str) -> None:
        with self.lock:
            box = self._box(user)
            message = box.messages.pop(message_id)
            box.by_rfc_id.pop(message.rfc_id, None)
            self._record(box, "messagesDeleted", message)

    def messages(self, user: str) -> list[dict[str, Any]]:
        """The mailbox as tests want to see it: id, threadId, labelIds and the raw bytes, in the order stored."""
        with self.lock:
            return [{**m.summary(), "raw": m.raw} for m in self._box(user).messages.values()]

    def _store(self, box: _Mailbox, raw: bytes, labels: list[str], thread_hint: str | None = None) -> _Message:
        message = _Message(_gmail_id(), "", raw, labels)
        references = [message.header("In-Reply-To"), *message.header("References").split()]
        known = [box.by_rfc_id[_message_id_of(r)] for r in references if _message_id_of(r) in box.by_rfc_id]
        if thread_hint and any(m.thread_id == thread_hint for m in box.messages.values()):
            message.thread_id = thread_hint
        else:
            message.thread_id = box.messages[known[0]].thread_id if known else message.id
        box.messages[message.id] = message
        if message.rfc_id:
            box.by_rfc_id[message.rfc_id] = message.id
        self._record(box, "messagesAdded", message)
        return message

    def _record(self, box: _Mailbox, kind: str, message: _Message, labels: list[str] | None = None) -> None:
        """Appends a history record; Gmail's history ids increase with gaps, so these do too."""
        box.history_id += 1 + secrets.randbelow(3)
        message.history_id = box.history_id
        box.history.append({"id": box.history_id, "kind": kind, "message": message.summary(), "labelIds": labels})

    # People data

    def add_contact(self, user: str, person: dict[str, Any]) -> str:
        resource_name = f"people/c{secrets.randbelow(10**19)}"
        with self.lock:
            source = {"type": "CONTACT", "id": secrets.token_hex(8)}
            self._put_contact(self._box(user), {**person, "resourceName": resource_name,
                                                "metadata": {"sources": [source], "objectType": "PERSON"}})
        return resource_name

    def update_contact(self, user: str, resource_name: str, changes: dict[str, Any]) -> None:
        with self.lock:
            box = self._box(user)
            self._put_contact(box, {**box.contacts[resource_name], **changes})

    def delete_contact(self, user: str, resource_name: str) -> None:
        with self.lock:
            box = self._box(user)
            del box.contacts[resource_name]
            box.contact_seq += 1
            box.contact_log.append((box.contact_seq, resource_name))

    def _put_contact(self, box: _Mailbox, person: dict[str, Any]) -> None:
        etag = "%" + secrets.token_urlsafe(18)
        person["etag"] = etag
        person["metadata"]["sources"][0].update(etag="#" + secrets.token_urlsafe(9), updateTime=_rfc3339(_now()))
        box.contacts[person["resourceName"]] = person
        box.contact_seq += 1
        box.contact_log.append((box.contact_seq, person["resourceName"]))

    # Faults and settings

    def expire_history(self, user: str) -> None:
        """Every startHistoryId known until now answers 404; the mailbox's current historyId moves past them."""
        with self.lock:
            box = self._box(user)
            box.history_id += 1 + secrets.randbelow(3)
            box.history_floor = box.history_id
            box.history.clear()

    def expire_sync_tokens(self, user: str) -> None:
        with self.lock:
            self._box(user).sync_epoch += 1

    def throttle(self, user: str, count: int, status: int = 429, reason: str = "rateLimitExceeded") -> None:
        """The user's next `count` calls are refused: 429 as real traffic mostly shows, or the documented 403."""
        retry_at = _now() + timedelta(seconds=1)
        self._arm(user, [_rate_limited(status, reason, retry_at) for _ in range(count)])

    def fail(self, user: str, count: int, status: int = 503) -> None:
        self._arm(user, [_unavailable(status) for _ in range(count)])

    def crash_after_send(self, user: str) -> None:
        """The user's next messages.send is stored and delivered, then its connection drops unanswered."""
        with self.lock:
            self._box(user).crash_after_send = True

    def delegate(self, *scopes: str) -> None:
        """Grants scopes to the service account's client id in the domain-wide-delegation settings."""
        with self.lock:
            self.delegated.update(scopes)

    def undelegate(self, *scopes: str) -> None:
        with self.lock:
            self.delegated.difference_update(scopes)

    def revoke_tokens(self) -> None:
        """Access tokens already issued stop working, as after a key rotation."""
        self.server.forget_tokens(self)

    def _arm(self, user: str, errors: list[GoogleError]) -> None:
        with self.lock:
            self._box(user).faults.extend(errors)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without it, each answer waits ~40 ms
    server: _Server

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.fake.handle(_Request(self.command, self.path, self.headers, body))
        if answer is None:
            self.close_connection = True
            return
        payload = answer.payload()
        self.send_response(answer.status)
        for name, value in {"Content-Type": answer.content_type, "Vary": "Origin, X-Origin, Referer", **answer.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        """Requests carry bearer tokens; keep them out of test output."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeGoogle


Route = tuple[str, re.Pattern[str], Callable[..., "_Answer | None"], str]


class FakeGoogle:
    """The server: start()/stop() or a context manager; workspaces come from create_workspace()."""

    def __init__(self, latency_seconds: float = 0.0, host: str = "127.0.0.1") -> None:
        self.latency_seconds, self.host = latency_seconds, host
        self.base_url = ""
        self._workspaces: dict[str, Workspace] = {}
        self._tokens: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._http: _Server | None = None
        gmail, directory = r"/gmail/v1/users/([^/]+)", r"/admin/directory/v1"
        self._routes: list[Route] = [
            ("GET", re.compile(gmail + "/profile"), self._profile, "gmail.users.getProfile"),
            ("GET", re.compile(gmail + "/messages"), self._messages_list, "gmail.users.messages.list"),
            ("POST", re.compile(gmail + "/messages/send"), self._send, "gmail.users.messages.send"),
            ("GET", re.compile(gmail + "/messages/([^/]+)"), self._message_get, "gmail.users.messages.get"),
            ("GET", re.compile(gmail + "/history"), self._history, "gmail.users.history.list"),
            ("GET", re.compile(r"/v1/people/([^/]+)/connections"), self._connections, "people.people.connections.list"),
            ("GET", re.compile(directory + "/users"), self._users_list, "directory.users.list"),
            ("GET", re.compile(directory + "/users/([^/]+)"), self._user_get, "directory.users.get"),
            ("GET", re.compile(directory + "/groups/([^/]+)/members"), self._members, "directory.members.list"),
        ]

    def start(self) -> FakeGoogle:
        self._http = _Server((self.host, 0), _Handler)
        self._http.fake = self
        self.base_url = f"http://{self.host}:{self._http.server_port}"
        threading.Thread(target=self._http.serve_forever, name="fake-google", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def create_workspace(self, domain: str = "acme.test") -> Workspace:
        workspace = Workspace(self, domain)
        with self._lock:
            self._workspaces[workspace.client_email] = workspace
        return workspace

    def remove_workspace(self, workspace: Workspace) -> None:
        self.forget_tokens(workspace)
        with self._lock:
            self._workspaces.pop(workspace.client_email, None)

    def forget_tokens(self, workspace: Workspace) -> None:
        with self._lock:
            for token in [t for t, grant in self._tokens.items() if grant.workspace is workspace]:
                del self._tokens[token]

    def handle(self, request: _Request) -> _Answer | None:
        """Routes one request; None means: drop the connection without an answer."""
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        if request.method == "POST" and re.fullmatch(r"/batch(/[a-z]+/[a-z0-9_.]+)?", request.path):
            try:
                return self._batch(request)
            except GoogleError as error:
                return error.answer()
        return self._call(request)

    # OAuth 2.0 token endpoint

    def _token(self, request: _Request) -> _Answer:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        assertion = form.get("assertion", "")
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss", "")
        except jwt.PyJWTError:
            issuer = ""
        with self._lock:
            workspace = self._workspaces.get(issuer)
        if workspace is not None:
            with workspace.lock:
                workspace.token_requests += 1
        if form.get("grant_type") != JWT_BEARER:
            return _token_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        if workspace is None:
            return _token_error(400, "invalid_grant", "Invalid grant: account not found")
        try:
            claims = jwt.decode(assertion, workspace.public_key, algorithms=["RS256"], leeway=60,
                                audience=[PUBLIC_TOKEN_URL, f"{self.base_url}/token"], options={"require": ["exp", "iat"]})
        except jwt.InvalidAudienceError:
            return _token_error(400, "invalid_grant", f"Invalid JWT: Failed audience check. The right audience is "
                                f"{PUBLIC_TOKEN_URL}")
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError, jwt.MissingRequiredClaimError):
            return _token_error(400, "invalid_grant", SHORT_LIVED)
        except jwt.PyJWTError:
            return _token_error(400, "invalid_grant", "Invalid JWT Signature.")
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            return _token_error(400, "invalid_grant", SHORT_LIVED)
        return self._grant(workspace, claims)

    def _grant(self, workspace: Workspace, claims: dict[str, Any]) -> _Answer:
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            return _token_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        subject = str(claims.get("sub", "")).lower() or None
        with workspace.lock:
            if subject in workspace._deleted:
                return _token_error(400, "invalid_grant", "The account has been deleted")
            if subject is not None and subject not in workspace._users:
                return _token_error(400, "invalid_grant", "Invalid email or User ID")
            if subject is not None and not scopes <= workspace.delegated:
                return _token_error(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this "
                                    "method, or client not authorized for any of the scopes requested.")
            lifetime = workspace.token_lifetime
        token = "ya29." + secrets.token_urlsafe(90)
        with self._lock:
            self._tokens[token] = _Grant(workspace, subject, scopes, time.time() + lifetime)
        return _Answer(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})

    # API calls

    def _call(self, request: _Request) -> _Answer | None:
        try:
            for verb, pattern, handler, method_id in self._routes:
                match = pattern.fullmatch(request.path)
                if match and verb == request.method:
                    grant = self._authorize(request, method_id)
                    with self._metered(grant, request, method_id, match[1] if pattern.groups else ""):
                        answer = handler(grant, request, *match.groups())
                    return answer if answer is None or isinstance(answer, _Answer) else _Answer(200, answer)
            raise _not_found(f"Method not found: {request.method} {request.path}")
        except GoogleError as error:
            return error.answer()

    def _authorize(self, request: _Request, method_id: str) -> _Grant:
        scheme, _, token = request.header("Authorization").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthenticated(missing=True)
        with self._lock:
            grant = self._tokens.get(token.strip())
        if grant is None or grant.expires <= time.time():
            raise _unauthenticated(missing=False)
        if not grant.scopes & _method_scopes()[method_id]:
            raise _insufficient_scope(method_id)
        return grant

    @contextmanager
    def _metered(self, grant: _Grant, request: _Request, method_id: str, target: str) -> Iterator[None]:
        """Checks who is called, then counts the call and applies armed faults, quota, concurrency and latency."""
        workspace, api = grant.workspace, method_id.split(".")[0]
        with workspace.lock:
            user = workspace._users.get(grant.user or "")
            if user is None and api == "directory":
                raise _forbidden("Not Authorized to access this resource/api")
            if user is None or (api != "directory" and user["suspended"]):
                raise _bad_request("Precondition check failed.", "failedPrecondition")
            if api == "gmail" and target.lower() not in ("me", user["primaryEmail"]):
                raise _forbidden(f"Delegation denied for {user['primaryEmail']}")
            email, box = user["primaryEmail"], workspace._mailboxes[user["primaryEmail"]]
            workspace.requests[email].append((request.method, request.path))
            if box.faults:
                raise box.faults.popleft()
            self._charge(workspace, email, box, QUOTA_UNITS.get(method_id, 0))
            if workspace.user_concurrency is not None and box.in_flight >= workspace.user_concurrency:
                raise GoogleError(429, "rateLimitExceeded", "Too many concurrent requests for user.")
            box.in_flight += 1
            workspace.max_concurrency_seen[email] = max(workspace.max_concurrency_seen[email], box.in_flight)
        try:
            time.sleep(workspace.latency_seconds)
            yield
        finally:
            with workspace.lock:
                box.in_flight -= 1

    @staticmethod
    def _charge(workspace: Workspace, email: str, box: _Mailbox, units: int) -> None:
        """The documented per-user limit over a rolling minute; a refused call costs nothing."""
        if not units:
            return
        now = time.monotonic()
        while box.spent and box.spent[0][0] <= now - 60:
            box.spent_total -= box.spent.popleft()[1]
        if box.spent_total + units > workspace.units_per_minute:
            wait = box.spent[0][0] + 60 - now if box.spent else 1.0
            raise _rate_limited(429, "rateLimitExceeded", _now() + timedelta(seconds=wait))
        box.spent.append((now, units))
        box.spent_total += units
        workspace.units[email] += units

    @staticmethod
    def _mailbox(grant: _Grant) -> tuple[Workspace, _Mailbox, dict[str, Any]]:
        workspace = grant.workspace
        user = workspace._users[grant.user or ""]
        return workspace, workspace._mailboxes[user["primaryEmail"]], user

    # Gmail

    def _profile(self, grant: _Grant, _request: _Request, _user_id: str) -> dict[str, Any]:
        workspace, box, user = self._mailbox(grant)
        with workspace.lock:
            return {"emailAddress": user["primaryEmail"], "messagesTotal": len(box.messages),
                    "threadsTotal": len({m.thread_id for m in box.messages.values()}), "historyId": str(box.history_id)}

    def _messages_list(self, grant: _Grant, request: _Request, _user_id: str) -> dict[str, Any]:
        workspace, box, _user = self._mailbox(grant)
        query = request.one("q")
        if query is not None and METADATA_SCOPE in grant.scopes:
            raise _forbidden("Metadata scope does not support 'q' parameter")
        size = request.number("maxResults", 100, 500, clamp=True)
        wanted, anywhere, matches = _search(query or "", workspace.search_delay_seconds)
        wanted += request.many("labelIds")
        hidden = set() if anywhere or request.flag("includeSpamTrash") else {"SPAM", "TRASH"}
        offset = _offset(request)
        with workspace.lock:
            found = [m for m in box.messages.values()
                     if all(label in m.labels for label in wanted) and not hidden & set(m.labels) and matches(m)]
        found.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
        page, next_token = _page(found, offset, size)
        body: dict[str, Any] = {"messages": [m.summary(labels=False) for m in page]} if page else {}
        if next_token:
            body["nextPageToken"] = next_token
        body["resultSizeEstimate"] = len(found)
        return body

    def _message_get(self, grant: _Grant, request: _Request, _user_id: str, message_id: str) -> dict[str, Any]:
        workspace, box, _user = self._mailbox(grant)
        form = (request.one("format") or "full").lower()
        if form in ("full", "raw") and METADATA_SCOPE in grant.scopes:
            raise _forbidden(f"Metadata scope doesn't allow format {form.upper()}")
        if not re.fullmatch(r"[0-9a-fA-F]{1,32}", message_id):
            raise _bad_request("Invalid id value")
        with workspace.lock:
            message = box.messages.get(message_id.lower())
            if message is None:
                raise _not_found()
            body: dict[str, Any] = {"id": message.id, "threadId": message.thread_id, "labelIds": list(message.labels),
                                    "snippet": message.snippet, "sizeEstimate": len(message.raw),
                                    "historyId": str(message.history_id), "internalDate": str(message.internal_date)}
        if form == "metadata":
            names = {name.lower() for name in request.many("metadataHeaders")}
            headers = [{"name": k, "value": v} for k, v in message.headers if not names or k.lower() in names]
            body["payload"] = {"mimeType": message.mime_type, "headers": headers}
        elif form == "raw":
            body["raw"] = _b64url(message.raw)
        elif form == "full":
            body["payload"] = _payload(BytesParser(policy=compat32).parsebytes(message.raw), "")
        return body

    def _history(self, grant: _Grant, request: _Request, _user_id: str) -> dict[str, Any]:
        workspace, box, _user = self._mailbox(grant)
        start = request.one("startHistoryId") or ""
        if not start.isdigit():
            raise _bad_request("Invalid startHistoryId" if start else "startHistoryId is required")
        kinds = {HISTORY_TYPES[t] for t in request.many("historyTypes") if t in HISTORY_TYPES} or set(HISTORY_TYPES.values())
        label = request.one("labelId")
        size = request.number("maxResults", 100, 500, clamp=True)
        offset = _offset(request)
        with workspace.lock:
            if int(start) < box.history_floor:
                raise _not_found()
            records = [r for r in box.history if r["id"] > int(start) and r["kind"] in kinds
                       and (label is None or label in r["message"]["labelIds"])]
            current = box.history_id
        page, next_token = _page(records, offset, size)
        body: dict[str, Any] = {"history": [_history_record(r) for r in page]} if page else {}
        if next_token:
            body["nextPageToken"] = next_token
        body["historyId"] = str(current)
        return body

    def _send(self, grant: _Grant, request: _Request, _user_id: str) -> dict[str, Any] | None:
        workspace, box, user = self._mailbox(grant)
        body = request.json()
        if not isinstance(body.get("raw"), str) or not body["raw"]:
            raise _bad_request("'raw' RFC822 payload message string or uploading message via /upload/* URL required")
        try:
            raw = _unb64url(body["raw"].replace("+", "-").replace("/", "_"))
        except (ValueError, binascii.Error):
            raise _bad_request("Invalid value for ByteString: raw") from None
        raw = _outgoing(raw, user["primaryEmail"], workspace.replace_message_ids)
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw).raw_items()
        fields = [_header_value(v) for k, v in headers if k.lower() in ("to", "cc", "bcc")]
        recipients = [address.lower() for _, address in getaddresses(fields) if "@" in address]
        if not recipients:
            raise _bad_request("Recipient address required")
        with workspace.lock:
            message = workspace._store(box, raw, ["SENT"], thread_hint=body.get("threadId"))
            workspace.sent.append({"user": user["primaryEmail"], "raw": raw, "id": message.id})
            delivered = _rewrite_headers(raw, {"bcc"}, [])
            for address in dict.fromkeys(recipients):
                try:
                    target = workspace._user(address)["primaryEmail"]
                except KeyError:
                    continue
                if target != user["primaryEmail"]:
                    workspace._store(workspace._mailboxes[target], delivered, ["INBOX", "UNREAD"])
            crash, box.crash_after_send = box.crash_after_send, False
        return None if crash else {"id": message.id, "threadId": message.thread_id, "labelIds": ["SENT"]}

    # Batch

    def _batch(self, request: _Request) -> _Answer | None:
        """Google's batch format: multipart/mixed of application/http parts, answered in kind, with matching Content-IDs."""
        content_type = request.header("Content-Type")
        if not content_type.lower().startswith("multipart/mixed"):
            raise _bad_request("Invalid batch request: multipart/mixed content required.", "badRequest")
        envelope = BytesParser(policy=compat32).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + request.body)
        parts = envelope.get_payload() if envelope.is_multipart() else []
        if len(parts) > BATCH_LIMIT:
            raise _bad_request(f"Inner request count exceeds the limit. Received: {len(parts)}, Limit: {BATCH_LIMIT}",
                               "badRequest")
        calls = [(part.get("Content-ID"), _inner_request(part, request)) for part in parts]
        with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
            answers = list(pool.map(self._call, [call for _, call in calls]))
        if any(answer is None for answer in answers):
            return None
        boundary = "batch_" + secrets.token_urlsafe(16)
        chunks = []
        for (content_id, _), answer in zip(calls, answers, strict=True):
            assert answer is not None
            ident = f"Content-ID: <response-{content_id.strip().strip('<>')}>\r\n" if content_id else ""
            chunks.append(f"--{boundary}\r\nContent-Type: application/http\r\n{ident}\r\n"
                          f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}\r\n"
                          f"Content-Type: {answer.content_type}\r\n\r\n".encode() + answer.payload() + b"\r\n")
        return _Answer(200, b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/mixed; boundary={boundary}")

    # People

    def _connections(self, grant: _Grant, request: _Request, resource: str) -> dict[str, Any]:
        workspace, box, user = self._mailbox(grant)
        if resource != "me":
            raise GoogleError(400, "", "Resource name must be people/me.", legacy=False)
        fields = _person_mask(request.one("personFields") or request.one("requestMask.includeField") or "")
        size = request.number("pageSize", 100, 1000, clamp=False) if request.one("pageSize") != "0" else 100
        wants_sync = request.flag("requestSyncToken")
        with workspace.lock:
            since, upto, offset, syncing = self._contact_window(request, box, user, fields, wants_sync)
            last: dict[str, int] = {}
            for seq, name in box.contact_log:
                if since < seq <= upto:
                    last[name] = seq
            names = [n for n in sorted(last, key=last.__getitem__) if syncing or n in box.contacts]
            page = names[offset:offset + size]
            people = [_render_person(box.contacts[n], fields) if n in box.contacts else _tombstone(n) for n in page]
            epoch = box.sync_epoch
        body: dict[str, Any] = {"connections": people} if people else {}
        cursor = {"u": user["primaryEmail"], "f": sorted(fields), "r": wants_sync, "s": since, "t": upto, "y": syncing}
        if offset + size < len(names):
            body["nextPageToken"] = _state({**cursor, "o": offset + size})
        elif syncing or wants_sync:
            body["nextSyncToken"] = _state({"u": user["primaryEmail"], "s": upto, "e": epoch})
        body["totalPeople"] = body["totalItems"] = len(names)
        return body

    @staticmethod
    def _contact_window(request: _Request, box: _Mailbox, user: dict[str, Any], fields: set[str],
                        wants_sync: bool) -> tuple[int, int, int, bool]:
        """(since, upto, offset, syncing): a page token continues a listing, a sync token starts one from its point."""
        page_token, sync_token = request.one("pageToken"), request.one("syncToken")
        if page_token:
            state = _unstate(page_token)
            if state is None or state.get("u") != user["primaryEmail"]:
                raise GoogleError(400, "", "Page token is not valid.", legacy=False)
            if state["f"] != sorted(fields) or state["r"] != wants_sync:
                raise GoogleError(400, "", "Parameters provided to connections.list must match the call that provided the "
                                  "page token.", legacy=False)
            return state["s"], state["t"], state["o"], state["y"]
        if sync_token:
            state = _unstate(sync_token)
            if state is None or state.get("u") != user["primaryEmail"] or state.get("e") != box.sync_epoch:
                info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN",
                        "domain": "people.googleapis.com"}
                raise GoogleError(400, "", "Sync token is expired. Clear local cache and retry call without the sync token.",
                                  status="FAILED_PRECONDITION", details=[info], legacy=False)
            return state["s"], box.contact_seq, 0, True
        return 0, box.contact_seq, 0, False

    # Admin SDK Directory

    def _directory_caller(self, grant: _Grant, public: bool) -> Workspace:
        """Admin-only unless the domain-public view is asked for, as the Directory API allows any user that."""
        workspace = grant.workspace
        with workspace.lock:
            if not public and not workspace._users[grant.user or ""]["isAdmin"]:
                raise _forbidden("Not Authorized to access this resource/api")
        return workspace

    def _users_list(self, grant: _Grant, request: _Request) -> dict[str, Any]:
        public = request.one("viewType") == "domain_public"
        workspace = self._directory_caller(grant, public)
        customer, domain = request.one("customer"), request.one("domain")
        if customer is None and domain is None:
            raise _bad_request("Bad Request", "badRequest")
        if (customer is not None and customer not in ("my_customer", workspace.customer_id)) or \
                (domain is not None and domain.lower() != workspace.domain):
            raise _forbidden("Not Authorized to access this resource/api")
        if request.one("query"):
            raise _bad_request("The fake Directory API does not support the query parameter.")
        size = request.number("maxResults", 100, 500, clamp=False)
        with workspace.lock:
            pool = workspace._deleted if request.flag("showDeleted") else workspace._users
            users = [_render_user(workspace, u, public) for u in pool.values()
                     if domain is None or u["primaryEmail"].endswith("@" + domain.lower())]
        users.sort(key=lambda u: u["primaryEmail"])
        page, next_token = _page(users, _offset(request), size)
        body: dict[str, Any] = {"kind": "admin#directory#users", "etag": f'"{secrets.token_urlsafe(20)}"'}
        if page:
            body["users"] = page
        if next_token:
            body["nextPageToken"] = next_token
        return body

    def _user_get(self, grant: _Grant, request: _Request, key: str) -> dict[str, Any]:
        public = request.one("viewType") == "domain_public"
        workspace = self._directory_caller(grant, public)
        with workspace.lock:
            try:
                return _render_user(workspace, workspace._user(key), public)
            except KeyError:
                raise _not_found("Resource Not Found: userKey") from None

    def _members(self, grant: _Grant, request: _Request, key: str) -> dict[str, Any]:
        workspace = self._directory_caller(grant, False)
        size = request.number("maxResults", 200, 200, clamp=False)
        with workspace.lock:
            groups = {g["email"]: g for g in workspace._groups.values()}
            group = groups.get(key.lower()) or workspace._groups.get(key)
            if group is None:
                raise _not_found("Resource Not Found: groupKey")
            emails = _group_members(group, groups, request.flag("includeDerivedMembership"), set())
            members = [_render_member(workspace, email, groups) for email in emails]
        page, next_token = _page([m for m in members if m], _offset(request), size)
        body: dict[str, Any] = {"kind": "admin#directory#members", "etag": f'"{secrets.token_urlsafe(20)}"'}
        if page:
            body["members"] = page
        if next_token:
            body["nextPageToken"] = next_token
        return body


def _token_error(status: int, error: str, description: str) -> _Answer:
    return _Answer(status, {"error": error, "error_description": description})


def _search(query: str, delay: float) -> tuple[list[str], bool, Callable[[_Message], bool]]:
    """The few Gmail search terms an in-doubt lookup needs: rfc822msgid:, in:, label:, is:unread.

    Returns the labels every match must carry, whether SPAM and TRASH count, and a predicate. Any other term is a
    400: a fake that silently ignored it would answer a different question than Gmail.
    """
    labels: list[str] = []
    wanted_ids: list[str] = []
    anywhere = False
    for term in query.split():
        key, _, value = term.partition(":")
        key = key.lower()
        if key == "rfc822msgid" and value:
            wanted_ids.append(_message_id_of(value))
        elif key in ("in", "label") and value.lower() == "anywhere":
            anywhere = True
        elif key in ("in", "label") and value:
            labels.append(value.upper())
            anywhere = anywhere or value.upper() in ("SPAM", "TRASH")
        elif key == "is" and value.lower() == "unread":
            labels.append("UNREAD")
        else:
            raise _bad_request(f"The fake Gmail API does not support the search term '{term}'.")

    def matches(message: _Message) -> bool:
        indexed = time.monotonic() - message.added >= delay
        return indexed and all(message.rfc_id == wanted for wanted in wanted_ids) if query else True

    return labels, anywhere, matches


def _history_record(record: dict[str, Any]) -> dict[str, Any]:
    message = record["message"]
    entry: dict[str, Any] = {"message": message if record["kind"] != "messagesDeleted" else
                             {"id": message["id"], "threadId": message["threadId"]}}
    if record["labelIds"] is not None:
        entry["labelIds"] = record["labelIds"]
    return {"id": str(record["id"]), "messages": [{"id": message["id"], "threadId": message["threadId"]}],
            record["kind"]: [entry]}


def _outgoing(raw: bytes, sender: str, replace_ids: bool) -> bytes:
    """What Gmail does to a message it sends: adds From, Date and a Message-ID when missing.

    A malformed Message-ID is replaced (the original kept in X-Google-Original-Message-ID), as Gmail does for
    inbound mail; a well-formed one is kept unless the workspace says `replace_message_ids`, the behaviour some
    reports describe for API sends.
    """
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    add: list[tuple[str, str]] = []
    drop: set[str] = set()
    if not parsed.get("From"):
        add.append(("From", sender))
    if not parsed.get("Date"):
        add.append(("Date", _now().strftime("%a, %d %b %Y %H:%M:%S +0000")))
    original = next((_header_value(v) for k, v in parsed.raw_items() if k.lower() == "message-id"), "").strip()
    made = f"<CA{secrets.token_urlsafe(33)}@mail.gmail.com>"
    if not original:
        add.append(("Message-ID", made))
    elif replace_ids or not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", original):
        drop.add("message-id")
        add += [("Message-ID", made), ("X-Google-Original-Message-ID", original)]
    return _rewrite_headers(raw, drop, add) if add else raw


def _inner_request(part: Message, outer: _Request) -> _Request:
    """One application/http part as a request; outer headers apply unless the part sets its own."""
    payload = part.get_payload(decode=True)
    text = payload if isinstance(payload, bytes) else b""
    line, _, rest = text.lstrip(b"\r\n").partition(b"\n")
    method, _, target = line.decode("latin-1").strip().partition(" ")
    target = target.rsplit(" ", 1)[0] if target.endswith(("HTTP/1.1", "HTTP/1.0")) else target
    inner = BytesParser(policy=compat32).parsebytes(rest)
    body = inner.get_payload(decode=True)
    return _Request(method or "GET", target.strip() or "/", inner, body if isinstance(body, bytes) else b"", outer)


def _person_mask(raw: str) -> set[str]:
    if not raw.strip():
        raise GoogleError(400, "", "personFields mask is required. Please specify one or more valid paths. Valid paths are "
                          f"documented at {DOCS}.", legacy=False)
    fields = {name.strip().removeprefix("person.") for name in raw.split(",") if name.strip()}
    for name in sorted(fields):
        if name not in _person_fields():
            raise GoogleError(400, "", f'Invalid personFields mask path: "{name}". Valid paths are documented at {DOCS}.',
                              legacy=False)
    return fields


def _render_person(person: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    entry = {"resourceName": person["resourceName"], "etag": person["etag"]}
    entry.update({name: person[name] for name in sorted(fields) if name in person})
    return entry


def _tombstone(resource_name: str) -> dict[str, Any]:
    """A contact deleted since the sync token: only its name, an etag and metadata.deleted."""
    return {"resourceName": resource_name, "etag": "%" + secrets.token_urlsafe(18),
            "metadata": {"sources": [{"type": "CONTACT", "id": resource_name.removeprefix("people/c")}],
                         "objectType": "PERSON", "deleted": True}}


def _render_user(workspace: Workspace, user: dict[str, Any], public: bool) -> dict[str, Any]:
    given, _, family = user["name"].partition(" ")
    local = user["primaryEmail"].split("@")[0]
    entry: dict[str, Any] = {
        "kind": "admin#directory#user", "id": user["id"], "etag": f'"{user["etag"]}"', "primaryEmail": user["primaryEmail"],
        "name": {"givenName": given or local, "familyName": family or local, "fullName": user["name"] or local},
        "emails": [{"address": user["primaryEmail"], "primary": True}] + [{"address": a} for a in user["aliases"]],
    }
    if user["manager"]:
        entry["relations"] = [{"value": user["manager"], "type": "manager"}]
    if user["department"]:
        entry["organizations"] = [{"department": user["department"], "primary": True, "customType": ""}]
    if public:
        return entry
    entry.update({
        "isAdmin": user["isAdmin"], "isDelegatedAdmin": False, "lastLoginTime": "1970-01-01T00:00:00.000Z",
        "creationTime": user["creationTime"], "agreedToTerms": True, "suspended": user["suspended"],
        "archived": user["archived"], "changePasswordAtNextLogin": False, "ipWhitelisted": False,
        "customerId": workspace.customer_id, "orgUnitPath": "/", "isMailboxSetup": True, "isEnrolledIn2Sv": False,
        "isEnforcedIn2Sv": False, "includeInGlobalAddressList": True,
    })
    if user["aliases"]:
        entry["aliases"] = list(user["aliases"])
    if user["suspended"]:
        entry["suspensionReason"] = "ADMIN"
    if "deletionTime" in user:
        entry["deletionTime"] = user["deletionTime"]
    return entry


def _group_members(group: dict[str, Any], groups: dict[str, dict[str, Any]], derived: bool, seen: set[str]) -> list[str]:
    """Direct members, or with derived membership the users reached through nested groups (each once)."""
    emails: list[str] = []
    for email in group["members"]:
        if derived and email in groups:
            if email not in seen:
                seen.add(email)
                emails += [e for e in _group_members(groups[email], groups, True, seen) if e not in emails]
        elif email not in emails:
            emails.append(email)
    return emails


def _render_member(workspace: Workspace, email: str, groups: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if email in groups:
        return {"kind": "admin#directory#member", "etag": f'"{secrets.token_urlsafe(12)}"', "id": groups[email]["id"],
                "email": email, "role": "MEMBER", "type": "GROUP", "status": "ACTIVE"}
    user = workspace._users.get(email)
    if user is None:
        return None
    return {"kind": "admin#directory#member", "etag": f'"{user["etag"]}"', "id": user["id"], "email": email,
            "role": "MEMBER", "type": "USER", "status": "ACTIVE"}


@pytest.fixture(scope="session")
def google_server() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        yield server


@pytest.fixture
def google_workspace(google_server: FakeGoogle) -> Iterator[Workspace]:
    workspace = google_server.create_workspace()
    yield workspace
    google_server.remove_workspace(workspace)

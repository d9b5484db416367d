"""IMAP: incremental, header-only, read-only sync of one mailbox.

The registry needs who wrote to whom and when, so only a few header fields and INTERNALDATE are
fetched (never bodies), from folders opened with EXAMINE so a sync never sets \\Seen. The cursor
keeps, per folder, UIDVALIDITY and the highest UID handed out, plus UIDNEXT and HIGHESTMODSEQ
once the folder was read to the end, so a resync with nothing new costs one STATUS per folder.

`retry_attempts` is the number of connection attempts per network step and `retry_wait_seconds`
the first backoff, doubling up to 30 s; a server still unreachable after them is a TransientError
for the engine to retry later.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from imapclient import IMAPClient
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from pydantic import Field, model_validator
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from connectors.base import MAIL, Connector, LoginSettings, SourceSettings
from connectors.errors import AuthError, PermanentError, TransientError
from connectors.google.settings import GoogleApp
from connectors.graph.settings import MicrosoftApp
from connectors.headers import HEADER_FIELDS, DateFallback, read_message
from connectors.network import is_loopback
from connectors.prefetch import prefetched
from connectors.records import Batch, Channel, Record, Skipped
from connectors.tokens import EnvironmentToken, TokenProvider

PROTOCOL_LOGGER = "imapclient.imaplib"
"""Where imapclient sends the IMAP protocol trace, passwords left out; set it to DEBUG to see it."""

log = logging.getLogger("custody.imap")
T = TypeVar("T")
Security = Literal["tls", "starttls", "plain"]

FETCH_ITEMS = (f"BODY.PEEK[HEADER.FIELDS ({' '.join(f.upper() for f in HEADER_FIELDS)})]", "INTERNALDATE")
MAX_COMMAND_BYTES = 8000
_UID_SET_BUDGET = MAX_COMMAND_BYTES - len(" ".join(FETCH_ITEMS)) - 64
_WANTED_USES = frozenset({b"\\sent", b"\\archive", b"\\all"})
_NEVER_USES = frozenset({b"\\junk", b"\\trash", b"\\drafts", b"\\noselect", b"\\nonexistent"})
_UID = re.compile(rb"[( ]UID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_ALL_USES = _WANTED_USES | _NEVER_USES | frozenset({b"\\flagged", b"\\important"})
_WANTED_NAMES = frozenset({"sent", "sent items", "sent messages", "sent mail", "sent-mail", "archive", "archives",
                           "all mail"})
_NEVER_NAMES = frozenset({"junk", "spam", "junk e-mail", "junk email", "bulk mail", "trash", "deleted items",
                          "deleted messages", "bin", "drafts"})


@dataclass(slots=True)
class FolderState:
    """Where one folder's sync stands; `uidnext`/`highestmodseq` are set only once it was read to the end."""

    uidvalidity: int
    last_uid: int = 0
    uidnext: int | None = None
    highestmodseq: int | None = None

    def unchanged(self, status: FolderState) -> bool:
        if status.uidvalidity != self.uidvalidity:
            return False
        if self.highestmodseq is not None and status.highestmodseq is not None:
            return status.highestmodseq == self.highestmodseq
        return self.uidnext is not None and status.uidnext == self.uidnext

    def as_json(self) -> dict[str, int | None]:
        return {"uidvalidity": self.uidvalidity, "last_uid": self.last_uid, "uidnext": self.uidnext,
                "highestmodseq": self.highestmodseq}


class Fetched(NamedTuple):
    uid: int
    header: bytes
    internaldate: bytes

    def received(self) -> datetime | None:
        """INTERNALDATE, parsed only for a message whose headers give no readable Date or Received stamp."""
        return _utc(parse_to_datetime(self.internaldate, normalise=False)) if self.internaldate else None


class _UidValidityChanged(Exception):
    """The folder was recreated while we were reading it; its planned UIDs mean nothing now."""


class ImapSettings(SourceSettings, LoginSettings):
    """One IMAP account. `auth = "xoauth2"` logs in with an access token instead of a password:
    the one in the environment variable `token_env` (kept fresh by whatever issues it), or one
    custody gets itself: from Microsoft 365 for the app registration in `microsoft365`, or from
    Google for the service account in `google`, acting as `username`."""

    kind: Literal["imap"] = "imap"
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "tls"
    auth: Literal["login", "xoauth2"] = "login"
    token_env: str = ""
    microsoft365: MicrosoftApp | None = None
    google: GoogleApp | None = None
    ca_file: Path | None = None
    folders: list[str] = Field(default_factory=list)
    exclude_folders: list[str] = Field(default_factory=list)
    timeout_seconds: float = Field(default=60.0, gt=0)
    retry_attempts: int = Field(default=5, ge=1, le=100)
    retry_wait_seconds: float = Field(default=1.0, ge=0, le=300)

    @model_validator(mode="after")
    def _coherent(self) -> "ImapSettings":
        if self.auth == "xoauth2" and sum(map(bool, (self.token_env, self.microsoft365, self.google))) != 1:
            raise ValueError('auth = "xoauth2" needs either token_env, the environment variable holding the access '
                             "token, or microsoft365 or google, the app registration or service account that gets one")
        if self.security == "plain" and not is_loopback(self.host):
            raise ValueError('security = "plain" is allowed only for a loopback host')
        return self

    def tokens(self) -> TokenProvider | None:
        if self.auth != "xoauth2":
            return None
        if self.microsoft365 is not None:
            from connectors.graph.auth import MsalTokens  # msal is imported only by sources that use it

            return MsalTokens(self.microsoft365, self.microsoft365.imap_scope())
        if self.google is not None:
            from connectors.google.auth import GmailImapTokens

            return GmailImapTokens(self.google)
        return EnvironmentToken(self.token_env)


class ImapConnector(Connector[ImapSettings]):
    """Yields MessageHeaders batches from INBOX, Sent and Archive folders of one IMAP account."""

    kind = "imap"
    settings_model = ImapSettings
    yields = MAIL

    def __init__(
        self, settings: ImapSettings, batch_size: int = 500, token_provider: TokenProvider | None = None
    ) -> None:
        super().__init__(settings, batch_size)
        self.source = settings
        self.token_provider = token_provider or settings.tokens()
        self.retry_attempts = settings.retry_attempts
        self.retry_wait = settings.retry_wait_seconds
        self._client: IMAPClient | None = None
        self._examined: str | None = None
        self._condstore = False
        self._where = f"{settings.host}:{self._port()}"
        self._at = ""

    def check(self) -> str:
        """Log in and list the folders a sync would read, trying once: waiting out the backoff
        would tell whoever runs the check nothing more. Credentials that cannot be had are named
        before any connection, whether the server answers or not."""
        self._credential()
        self.retry_attempts = 1
        try:
            folders, missing = self._call(self._choose_folders)
        finally:
            self._disconnect()
        absent = f"; not found: {', '.join(s.ref for s in missing)}" if missing else ""
        return f"imap {self._where} as {self.source.username}: {len(folders)} folders to read{absent}"

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        return prefetched(lambda: self._batches(cursor))

    def _batches(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        states = {name: FolderState(**saved) for name, saved in (cursor or {}).get("folders", {}).items()}
        self._at = ""
        try:
            folders, missing = self._call(self._choose_folders)
            if missing:
                yield Batch([], _cursor(states), missing)
            for folder in folders:
                self._at = folder
                yield from self._sync_folder(folder, states)
        except Exception as error:
            if self._at:
                error.add_note(f"at {self._at}")
            raise
        finally:
            self._disconnect()

    def _sync_folder(self, folder: str, states: dict[str, FolderState]) -> Iterator[Batch]:
        status = self._call(self._status, folder)
        known = states.get(folder)
        if known is not None and known.unchanged(status):
            return
        for _ in range(3):
            try:
                yield from self._read_new(folder, status, states)
                return
            except _UidValidityChanged:
                status = self._call(self._status, folder)
        raise TransientError(f"{self._where}: {folder} keeps changing its UIDVALIDITY; try again later")

    def _read_new(self, folder: str, status: FolderState, states: dict[str, FolderState]) -> Iterator[Batch]:
        uidvalidity = self._call(self._examine, folder)
        known = states.get(folder)
        if known is not None and known.uidvalidity != uidvalidity:
            uidvalidity = self._call(self._confirm_uidvalidity, folder, uidvalidity)
        if known is None or known.uidvalidity != uidvalidity:
            known = FolderState(uidvalidity)
        uids = self._call(self._uids_after, folder, known)
        for chunk in uid_chunks(uids, self.batch_size):
            self._at = f"{folder}/{uidvalidity}/{chunk[0]}"
            rows = self._call(self._fetch, folder, uidvalidity, chunk)
            records, skipped = parse_fetched(rows, folder, self.source.channel, uidvalidity)
            done = chunk[-1] == uids[-1]
            states[folder] = FolderState(uidvalidity, chunk[-1], status.uidnext if done else None,
                                         status.highestmodseq if done else None)
            yield Batch(records, _cursor(states), skipped)
        if not uids:
            states[folder] = FolderState(uidvalidity, known.last_uid, status.uidnext, status.highestmodseq)
            yield Batch([], _cursor(states))

    def _choose_folders(self) -> tuple[list[str], list[Skipped]]:
        """INBOX plus \\Sent, \\Archive and \\All (by name when the server has no SPECIAL-USE) and the
        configured extras; never Junk, Trash or Drafts, whatever the config says."""
        listing = {name: {flag.lower() for flag in flags} for flags, _, name in self._connected().list_folders()}
        by_flags = any(flags & _ALL_USES for flags in listing.values())
        excluded = {_folder_key(name) for name in self.source.exclude_folders}
        chosen: list[str] = []
        for name, flags in listing.items():
            wanted = flags & _WANTED_USES if by_flags else _leaf(name) in _WANTED_NAMES
            if name.upper() == "INBOX" or wanted or name in self.source.folders:
                chosen.append(name)
        missing = [Skipped(ref=name, reason="folder not found on the server")
                   for name in self.source.folders if name not in listing]
        never = {name for name, flags in listing.items() if flags & _NEVER_USES or _leaf(name) in _NEVER_NAMES}
        return [n for n in chosen if n not in never and _folder_key(n) not in excluded], missing

    def _status(self, folder: str) -> FolderState:
        items = [b"UIDVALIDITY", b"UIDNEXT"] + ([b"HIGHESTMODSEQ"] if self._condstore else [])
        client = self._connected()
        if self._examined == folder:
            client.close_folder()
            self._examined = None
        found = client.folder_status(folder, items)
        return FolderState(found[b"UIDVALIDITY"], 0, found[b"UIDNEXT"], found.get(b"HIGHESTMODSEQ"))

    def _confirm_uidvalidity(self, folder: str, seen: int) -> int:
        """A new UIDVALIDITY means a full rescan of the folder, so a second EXAMINE must agree first."""
        self._connected().close_folder()
        self._examined = None
        if self._examine(folder) != seen:
            raise _UidValidityChanged(folder)
        return seen

    def _examine(self, folder: str) -> int:
        response = self._connected().select_folder(folder, readonly=True)
        self._examined = folder
        return int(response[b"UIDVALIDITY"])

    def _ensure_examined(self, folder: str, uidvalidity: int) -> IMAPClient:
        if self._examined != folder and self._examine(folder) != uidvalidity:
            raise _UidValidityChanged(folder)
        assert self._client is not None
        return self._client

    def _uids_after(self, folder: str, known: FolderState) -> list[int]:
        client = self._ensure_examined(folder, known.uidvalidity)
        return sorted(uid for uid in client.search(["UID", f"{known.last_uid + 1}:*"]) if uid > known.last_uid)

    def _fetch(self, folder: str, uidvalidity: int, uids: list[int]) -> list[Fetched]:
        """UID FETCH through imaplib: imapclient's generic response parser costs three times what the
        server takes, and this response has one fixed shape. `_imap` is imapclient's private handle
        on its imaplib connection, hence the pin below 5 in pyproject.toml; every IMAP test uses it."""
        client = self._ensure_examined(folder, uidvalidity)
        status, data = client._imap.uid("FETCH", ",".join(map(str, uids)), f"({' '.join(FETCH_ITEMS)})")
        if status != "OK":
            raise IMAPClientError(f"UID FETCH failed: {data!r}")
        return fetched_headers(data, set(uids))

    def _call(self, operation: Callable[..., T], *args: Any) -> T:
        """Run one network step, reconnecting with backoff when the connection drops."""
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.retry_attempts),
            wait=wait_exponential(multiplier=self.retry_wait, max=30),
            before_sleep=self._reconnecting,
            reraise=True,
        )
        try:
            return retrying(operation, *args)
        except (OSError, IMAPClientAbortError) as error:
            self._drop()
            if isinstance(error, ssl.SSLCertVerificationError):
                raise PermanentError(f"{self._where}: TLS certificate not trusted ({error.verify_message})") from None
            raise TransientError(
                f"{self._where}: connection failed after {self.retry_attempts} attempts ({_describe(error)})"
            ) from None
        except IMAPClientError as error:
            self._drop()
            raise PermanentError(f"{self._where}: the server refused: {_server_text(error)}") from None

    def _reconnecting(self, attempt: RetryCallState) -> None:
        error = attempt.outcome.exception() if attempt.outcome else None
        log.warning("%s: connection lost (%s); reconnecting in %.1f s", self._where,
                    _describe(error) if error else "unknown", attempt.upcoming_sleep)
        self._drop()

    def _connected(self) -> IMAPClient:
        if self._client is None:
            self._client = self._open()
        return self._client

    def _open(self) -> IMAPClient:
        source = self.source
        client = open_connection(source.host, self._port(), source.security, source.ca_file, source.timeout_seconds)
        try:
            self._login(client)
            client.normalise_times = False
            self._condstore = b"CONDSTORE" in client.capabilities()
        except BaseException:
            client.shutdown()
            raise
        self._examined = None
        return client

    def _login(self, client: IMAPClient) -> None:
        source = self.source
        secret = ""
        try:
            secret = self._credential()
            if self.token_provider is not None:
                client.oauth2_login(source.username, secret)
            else:
                client.login(source.username, secret)
        except LoginError as error:
            reason = _server_text(error).replace(secret, "***") if secret else _server_text(error)
            raise AuthError(f"{self._where}: login as {source.username} failed: {reason}") from None
        except AuthError as error:
            raise AuthError(f"{self._where}: {error}") from None

    def _credential(self) -> str:
        """The access token or the password; an AuthError when the environment lacks it."""
        if self.token_provider is not None:
            return self.token_provider.token(self.source.username)
        return self.source.secret()

    def _disconnect(self) -> None:
        if self._client is None:
            return
        try:
            self._client.logout()
        except (OSError, IMAPClientError):
            pass
        self._drop()

    def _drop(self) -> None:
        """Forget a connection that may be dead, without waiting on it."""
        client, self._client, self._examined = self._client, None, None
        if client is None:
            return
        try:
            client.shutdown()
        except OSError:
            pass

    def _port(self) -> int:
        return self.source.port or (993 if self.source.security == "tls" else 143)


def fetched_headers(data: list[Any], wanted: set[int]) -> list[Fetched]:
    """(uid, header block, INTERNALDATE) from imaplib's FETCH data: a (prefix, literal) pair per message,
    with the rest of the response (which may hold UID or INTERNALDATE) in the next element."""
    found: list[Fetched] = []
    for position, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        rest = data[position + 1] if position + 1 < len(data) and isinstance(data[position + 1], bytes) else b""
        meta = item[0] + b" " + rest
        uid = _UID.search(meta)
        if uid is None or int(uid.group(1)) not in wanted:
            continue
        received = _INTERNALDATE.search(meta)
        found.append(Fetched(int(uid.group(1)), item[1] or b"", received.group(1) if received else b""))
    return sorted(found)


def parse_fetched(
    rows: list[Fetched], folder: str, channel: Channel, uidvalidity: int
) -> tuple[list[Record], list[Skipped]]:
    records: list[Record] = []
    skipped: list[Skipped] = []
    for row in rows:
        headers, problems = read_message(row.header, f"{folder}/{uidvalidity}/{row.uid}", folder, channel,
                                         DateFallback("internaldate", row.received))
        if headers is not None:
            records.append(headers)
        skipped += problems
    return records, skipped


def open_connection(host: str, port: int, security: Security, ca_file: Path | None, timeout: float) -> IMAPClient:
    """A connected client, not yet logged in: implicit TLS or STARTTLS with the certificate verified
    (against `ca_file` when given), plain text only to a loopback host."""
    if security == "plain" and not is_loopback(host):
        raise PermanentError(f"{host}:{port}: security = \"plain\" is allowed only for a loopback host")
    if security == "plain":
        return _untraced(IMAPClient(host, port=port, ssl=False, timeout=timeout))
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    client = _untraced(IMAPClient(host, port=port, ssl=security == "tls", ssl_context=context, timeout=timeout))
    if security == "starttls":
        try:
            client.starttls(context)
        except BaseException:
            client.shutdown()
            raise
    return client


def _untraced(client: IMAPClient) -> IMAPClient:
    """imapclient switches on imaplib's protocol trace and hands every line read or sent to the
    `imapclient.imaplib` logger, which drops it unless set to DEBUG: a sixth of a full sync's reading
    CPU went to lines nobody saw. The trace is kept when that logger would show it."""
    if not logging.getLogger(PROTOCOL_LOGGER).isEnabledFor(logging.DEBUG):
        client._imap.debug = 0
    return client


def uid_chunks(uids: list[int], size: int, budget: int = _UID_SET_BUDGET) -> Iterator[list[int]]:
    """Split UIDs into chunks of at most `size` whose comma-joined list stays within `budget` characters."""
    chunk: list[int] = []
    length = 0
    for uid in uids:
        width = len(str(uid)) + 1
        if chunk and (len(chunk) >= size or length + width > budget):
            yield chunk
            chunk, length = [], 0
        chunk.append(uid)
        length += width
    if chunk:
        yield chunk


def _cursor(states: dict[str, FolderState]) -> dict[str, Any]:
    return {"folders": {name: state.as_json() for name, state in states.items()}}


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, (OSError, IMAPClientAbortError)) and not isinstance(error, ssl.SSLCertVerificationError)


def _server_text(error: BaseException) -> str:
    """imapclient wraps the server's reply as the repr of bytes; show the words."""
    text = str(error)
    return text[2:-1] if text[:2] in ("b'", 'b"') and text[-1:] in ("'", '"') else text


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _folder_key(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


def _leaf(name: str) -> str:
    return name.replace(".", "/").rsplit("/", 1)[-1].strip().lower()


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)

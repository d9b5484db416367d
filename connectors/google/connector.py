"""The Google source: the Directory first, then every mailbox's Gmail and contacts as page chains
(connectors/chains.py) read side by side.

A mailbox is read whole once (messages.list, then the messages' metadata in batches of at most
50 calls), from the historyId taken before the listing began; after that only what its history
says was added. A historyId Gmail no longer keeps (404) rereads that mailbox from the start, and
an expired People sync token relists that address book: ingest stores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from googleapiclient.discovery import Resource

from connectors.base import Connector
from connectors.chains import Page, read_chains
from connectors.directory import DirectoryState, Scope
from connectors.errors import ConnectorError, CursorInvalid
from connectors.google.client import GoogleClient, NotFound
from connectors.google.records import METADATA_HEADERS, PERSON_FIELDS, contact_entry, message_record, seen_user
from connectors.google.settings import GoogleSettings
from connectors.records import AddressBookEntry, Batch, DirectoryEvent, MessageHeaders, Record, Skipped

log = logging.getLogger("custody.google")
UNITS = {"get": 5, "list": 5, "history": 2, "profile": 1, "people": 1, "directory": 1}
WATCHED_LABELS = frozenset({"INBOX", "SENT"})


@dataclass(frozen=True)
class _Gmail:
    """One mailbox's Gmail service and its resources, built once: google-api-python-client builds a
    resource's every method from the discovery document at each `users()` or `messages()` call, a
    millisecond a message if done per call."""

    service: Resource
    users: Resource
    messages: Resource
    history: Resource

    @classmethod
    def of(cls, service: Resource) -> _Gmail:
        users = service.users()
        return cls(service, users, users.messages(), users.history())


class GoogleConnector(Connector[GoogleSettings]):
    kind = "google"
    settings_model = GoogleSettings
    yields: ClassVar[tuple[type[Record], ...]] = (MessageHeaders, AddressBookEntry, DirectoryEvent)

    def __init__(self, settings: GoogleSettings, batch_size: int = 500, client: GoogleClient | None = None) -> None:
        super().__init__(settings, batch_size)
        self.client = client or GoogleClient(settings, settings.scopes())
        self.page_size = min(batch_size, settings.page_size)
        self._users: list[dict[str, Any]] | None = None
        self._members: list[dict[str, Any]] | None = None

    def check(self) -> str:
        """Act as the admin and as the first mailbox, and make one read of each kind the source reads."""
        self._users = self._members = None
        mailboxes = self._mailboxes()
        if "directory" in self.settings.read:
            self._directory_users()
        if mailboxes and "mail" in self.settings.read:
            gmail = self.client.service("gmail", "v1", mailboxes[0])
            self.client.execute(mailboxes[0], gmail.users().getProfile(userId="me").execute, UNITS["profile"])
        if mailboxes and "contacts" in self.settings.read:
            self._connections(self.client.service("people", "v1", mailboxes[0]), mailboxes[0], None, None)
        return (f"google service account {self.client.client_id()}: {len(mailboxes)} mailboxes, "
                f"reads {', '.join(self.settings.read)}")

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        saved = cursor or {}
        state: dict[str, Any] = {"directory": saved.get("directory", {}), "chains": dict(saved.get("chains", {}))}
        self._users = self._members = None
        if "directory" in self.settings.read:
            yield from self._directory(state)
        chains = self._largest_first([f"{m}/{part}" for m in self._mailboxes() for part in self._parts()], state["chains"])
        for page in read_chains(chains, lambda key: self._chain(key, state["chains"].get(key) or {}),
                                self.settings.workers, self.settings.name):
            if page.chain:
                state["chains"][page.chain] = page.position
            yield Batch(page.records, _copied(state), page.skipped)

    def _largest_first(self, chains: list[str], positions: dict[str, Any]) -> list[str]:
        """Mailboxes still to be read whole go first, largest first: each user's quota is a minute's
        worth, so a large mailbox started last decides how long a first sync takes. Their profiles,
        read side by side, give the size and the historyId the full sync would read anyway."""
        fresh = [key for key in chains if key.endswith("/mail") and not positions.get(key)]
        if len(fresh) < 2:
            return chains
        with ThreadPoolExecutor(min(self.settings.workers, len(fresh))) as pool:
            profiles = dict(zip(fresh, pool.map(self._profile, (key.rpartition("/")[0] for key in fresh)), strict=True))
        for key, profile in profiles.items():
            if profile:
                positions[key] = {"full": {"history_id": str(profile["historyId"])}}
        return sorted(chains, key=lambda key: -int((profiles.get(key) or {}).get("messagesTotal", 0)))

    def _profile(self, mailbox: str) -> dict[str, Any] | None:
        """The mailbox's profile, or None when it cannot be read now (its chain will say why)."""
        try:
            gmail = self.client.service("gmail", "v1", mailbox)
            found: dict[str, Any] = self.client.execute(mailbox, gmail.users().getProfile(userId="me").execute,
                                                        UNITS["profile"])
        except ConnectorError:
            return None
        return found

    def _parts(self) -> list[str]:
        return [part for part in ("mail", "contacts") if part in self.settings.read]

    def _mailboxes(self) -> list[str]:
        """The named mailboxes, the group's active members and the domains' active users."""
        found = list(self.settings.mailboxes)
        if self.settings.group:
            active = {str(u.get("primaryEmail", "")).lower() for u in self._directory_users()
                      if not (u.get("suspended") or u.get("archived"))}
            found += [str(m.get("email", "")).lower() for m in self._group_members()
                      if str(m.get("email", "")).lower() in active]
        if self.settings.domains:
            found += [seen.mail for seen in map(seen_user, self._directory_users())
                      if seen.enabled and seen.mail.rpartition("@")[2] in self.settings.domains]
        return list(dict.fromkeys(a for a in found if a))

    def _directory_users(self) -> list[dict[str, Any]]:
        """Every user of the Workspace account, read once per sync as the admin."""
        if self._users is None:
            admin = self.client.service("admin", "directory_v1", self.settings.admin)
            self._users = list(self._all(admin.users().list, self.settings.admin, "users",
                                         customer="my_customer", projection="full", maxResults=500))
        return self._users

    def _group_members(self) -> list[dict[str, Any]]:
        if self._members is None:
            admin = self.client.service("admin", "directory_v1", self.settings.admin)
            self._members = [m for m in self._all(admin.members().list, self.settings.admin, "members",
                                                  groupKey=self.settings.group, includeDerivedMembership=True)
                             if m.get("type", "USER") == "USER"]
        return self._members

    def _all(self, method: Any, user: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            answer = self.client.execute(user, method(pageToken=token, **params).execute, UNITS["directory"])
            yield from answer.get(key, [])
            token = answer.get("nextPageToken")
            if not token:
                return

    def _directory(self, state: dict[str, Any]) -> Iterator[Batch]:
        """The whole directory each sync (the Admin SDK has no delta): changes against the stored
        state, and a user no longer listed as deleted."""
        members = frozenset(str(m.get("id", "")) for m in self._group_members()) if self.settings.group else frozenset()
        scope = Scope(frozenset(self.settings.mailboxes), members, frozenset(self.settings.domains))
        directory = DirectoryState.from_json(self.settings.name, state["directory"])
        seen = [seen_user(u) for u in self._directory_users() if u.get("id")]
        events = directory.changes(seen, scope) + directory.vanished({s.user_id for s in seen})
        state["directory"] = directory.as_json()
        yield Batch(list(events), _copied(state))

    def _chain(self, key: str, position: dict[str, Any]) -> Iterator[Page]:
        mailbox, _, part = key.rpartition("/")
        if part == "contacts":
            return self._contact_pages(key, mailbox, position)
        return self._mail_pages(key, mailbox, position)

    def _mail_pages(self, key: str, mailbox: str, position: dict[str, Any]) -> Iterator[Page]:
        gmail = _Gmail.of(self.client.service("gmail", "v1", mailbox))
        if position.get("history_id"):
            try:
                yield from self._history(key, gmail, mailbox, position)
                return
            except CursorInvalid:
                log.warning("source %s: %s: Gmail no longer keeps history %s; reading the mailbox again",
                            self.settings.name, mailbox, position["history_id"])
                position = {}
        yield from self._full(key, gmail, mailbox, position.get("full") or {})

    def _full(self, key: str, gmail: _Gmail, mailbox: str, full: dict[str, Any]) -> Iterator[Page]:
        """Every message, from the historyId taken before the listing, so nothing added meanwhile is missed."""
        start = full.get("history_id") or self.client.execute(
            mailbox, gmail.users.getProfile(userId="me").execute, UNITS["profile"])["historyId"]
        token = full.get("page_token")
        while True:
            listing = self.client.execute(mailbox, gmail.messages.list(
                userId="me", maxResults=self.page_size, pageToken=token, includeSpamTrash=False).execute, UNITS["list"])
            records, skipped = self._fetch(gmail, mailbox, [m["id"] for m in listing.get("messages", [])])
            token = listing.get("nextPageToken")
            position = {"full": {"page_token": token, "history_id": start}} if token else {"history_id": str(start)}
            yield Page(key, records, skipped, position, not token)
            if not token:
                return

    def _history(self, key: str, gmail: _Gmail, mailbox: str, position: dict[str, Any]) -> Iterator[Page]:
        start, token = position["history_id"], position.get("page_token")
        while True:
            try:
                answer = self.client.execute(mailbox, gmail.history.list(
                    userId="me", startHistoryId=start, historyTypes=["messageAdded", "labelAdded"], pageToken=token,
                    maxResults=self.page_size).execute, UNITS["history"])
            except NotFound as error:
                raise CursorInvalid(str(error)) from None
            records, skipped = self._fetch(gmail, mailbox, _added(answer.get("history", [])))
            token = answer.get("nextPageToken")
            latest = {"history_id": str(answer.get("historyId") or start)}
            yield Page(key, records, skipped, {"history_id": start, "page_token": token} if token else latest, not token)
            if not token:
                return

    def _fetch(self, gmail: _Gmail, mailbox: str, ids: list[str]) -> tuple[list[Record], list[Skipped]]:
        """The messages' metadata, `calls_per_batch` calls to a batch; one deleted meanwhile is passed over."""
        records: list[Record] = []
        skipped: list[Skipped] = []
        step = self.settings.calls_per_batch
        for start in range(0, len(ids), step):
            chunk = ids[start:start + step]
            requests = {i: gmail.messages.get(userId="me", id=i, format="metadata", metadataHeaders=list(METADATA_HEADERS))
                        for i in chunk}
            answers = self.client.batch(mailbox, gmail.service, requests, UNITS["get"])
            for message_id in chunk:
                answer = answers.get(message_id)
                if isinstance(answer, ConnectorError):
                    raise answer
                if isinstance(answer, Exception):
                    if getattr(answer, "status_code", None) != 404:
                        skipped.append(Skipped(f"{mailbox}/{message_id}", f"unreadable: {answer}"[:300]))
                    continue
                record, problems = message_record(answer or {}, mailbox, self.settings.channel)
                records += [record] if record is not None else []
                skipped += problems
        return records, skipped

    def _contact_pages(self, key: str, mailbox: str, position: dict[str, Any]) -> Iterator[Page]:
        people = self.client.service("people", "v1", mailbox)
        sync_token, token = position.get("sync_token"), position.get("page_token")
        while True:
            try:
                answer = self._connections(people, mailbox, sync_token, token)
            except CursorInvalid:
                if not sync_token:
                    raise
                log.warning("source %s: %s: the contacts sync token expired; listing them again", self.settings.name, mailbox)
                sync_token = token = None
                continue
            entries = [e for e in (contact_entry(p, mailbox, self.settings.channel) for p in answer.get("connections", []))
                       if e is not None]
            token = answer.get("nextPageToken")
            done = {"sync_token": answer.get("nextSyncToken") or sync_token}
            yield Page(key, list(entries), [], {"sync_token": sync_token, "page_token": token} if token else done, not token)
            if not token:
                return

    def _connections(self, people: Resource, mailbox: str, sync_token: str | None, token: str | None) -> dict[str, Any]:
        request = people.people().connections().list(
            resourceName="people/me", personFields=PERSON_FIELDS, pageSize=min(self.page_size * 2, 1000), pageToken=token,
            requestSyncToken=True, syncToken=sync_token)
        found: dict[str, Any] = self.client.execute(mailbox, request.execute, UNITS["people"])
        return found


def _added(history: list[dict[str, Any]]) -> list[str]:
    """Messages added, or newly labelled Inbox or Sent (out of spam, say), each once."""
    ids: list[str] = []
    for record in history:
        ids += [m["message"]["id"] for m in record.get("messagesAdded", []) if m.get("message", {}).get("id")]
        ids += [m["message"]["id"] for m in record.get("labelsAdded", [])
                if m.get("message", {}).get("id") and WATCHED_LABELS & set(m.get("labelIds") or ())]
    return list(dict.fromkeys(ids))


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    return {"directory": state["directory"], "chains": dict(state["chains"])}

"""The Graph source: the directory first, then every mailbox's Inbox, Sent Items and contacts.

Each folder (and each contacts list) is a chain of delta pages (connectors/chains.py):
`@odata.nextLink` to the end of a round, where `@odata.deltaLink` is the chain's position for the
next one. A delta token Graph no longer knows restarts that chain only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from connectors.base import Connector
from connectors.chains import Page, read_chains
from connectors.directory import DirectoryState, Scope
from connectors.errors import CursorInvalid
from connectors.graph.client import GraphClient, NotFound
from connectors.graph.directory import USER_FIELDS, seen_user, user_addresses
from connectors.graph.records import CONTACT_FIELDS, MESSAGE_FIELDS, contact_entries, messages
from connectors.graph.settings import GraphSettings
from connectors.records import AddressBookEntry, Batch, DirectoryEvent, MessageHeaders, Record, Skipped

log = logging.getLogger("custody.graph")
FOLDERS = ("inbox", "sentitems")
READ_MAIL = "Mail.ReadBasic.All (or Mail.Read)"
READ_CONTACTS = "Contacts.Read"
READ_USERS = "User.Read.All"
READ_GROUPS = "GroupMember.Read.All"
CONTACTS_PAGE_CAP = 200


@dataclass(frozen=True)
class Chain:
    """One delta collection of one mailbox: a mail folder or the contacts."""

    mailbox: str
    folder: str

    @property
    def key(self) -> str:
        return f"{self.mailbox}/{self.folder}"


@dataclass
class _Cursor:
    links: dict[str, str] = field(default_factory=dict)
    directory_link: str = ""
    directory: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"links": dict(self.links), "directory_link": self.directory_link, "directory": self.directory}


class GraphConnector(Connector[GraphSettings]):
    kind = "graph"
    settings_model = GraphSettings
    yields: ClassVar[tuple[type[Record], ...]] = (MessageHeaders, AddressBookEntry, DirectoryEvent)

    def __init__(self, settings: GraphSettings, batch_size: int = 500, client: GraphClient | None = None) -> None:
        super().__init__(settings, batch_size)
        self.client = client or GraphClient(settings)
        self.page_size = min(batch_size, settings.page_size)
        self._members: list[dict[str, Any]] | None = None

    def check(self) -> str:
        """A token, the mailboxes in scope, and one read of each kind the source reads."""
        try:
            self.client.tokens.token()
            mailboxes = self._mailboxes()
            if "directory" in self.settings.read:
                self.client.get("directory", "/users", READ_USERS, {"$select": "id", "$top": "1"})
            if mailboxes and "mail" in self.settings.read:
                self.client.get(mailboxes[0], f"/users/{mailboxes[0]}/mailFolders/inbox", READ_MAIL, {"$select": "id"})
            if mailboxes and "contacts" in self.settings.read:
                self.client.get(mailboxes[0], f"/users/{mailboxes[0]}/contacts", READ_CONTACTS,
                                {"$select": "id", "$top": "1"})
        finally:
            self.client.close()
        return (f"graph tenant {self.settings.tenant_id} at {self.settings.graph_root()}: token granted, "
                f"{len(mailboxes)} mailboxes, reads {', '.join(self.settings.read)}")

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        saved = cursor or {}
        state = _Cursor(dict(saved.get("links", {})), saved.get("directory_link", ""), saved.get("directory", {}))
        self._members = None
        try:
            self.client.tokens.token()
            if "directory" in self.settings.read:
                yield from self._directory(state)
            chains = [Chain(m, f) for m in self._mailboxes() for f in self._folders()]
            yield from self._chains(chains, state)
        finally:
            self.client.close()

    def _folders(self) -> list[str]:
        return [*(FOLDERS if "mail" in self.settings.read else ()), *(["contacts"] if "contacts" in self.settings.read else ())]

    def _mailboxes(self) -> list[str]:
        """The named mailboxes, the group's enabled members and the domains' enabled users."""
        found = list(self.settings.mailboxes)
        if self.settings.group:
            found += [user_addresses(u)[0] for u in self._group_members() if u.get("accountEnabled", True)]
        if self.settings.domains:
            users = self.client.pages("directory", "/users", READ_USERS, {
                "$filter": "accountEnabled eq true", "$select": "id,mail,userPrincipalName,proxyAddresses"})
            found += [a for a in (user_addresses(u)[0] for u in users) if a.rpartition("@")[2] in self.settings.domains]
        return list(dict.fromkeys(a for a in found if a))

    def _group_members(self) -> list[dict[str, Any]]:
        """The group's members, read once per sync: both the mailboxes and the directory's scope need them."""
        if self._members is None:
            path = f"/groups/{self.settings.group}/transitiveMembers/microsoft.graph.user"
            self._members = list(self.client.pages("directory", path, f"{READ_GROUPS} and {READ_USERS}",
                                                   {"$select": "id,mail,userPrincipalName,proxyAddresses,accountEnabled"}))
        return self._members

    def _directory(self, state: _Cursor) -> Iterator[Batch]:
        members = frozenset(str(u.get("id")) for u in self._group_members()) if self.settings.group else frozenset()
        scope = Scope(frozenset(self.settings.mailboxes), members, frozenset(self.settings.domains))
        directory = DirectoryState.from_json(self.settings.name, state.directory.get("people"))
        managers: dict[str, str] = dict(state.directory.get("managers", {}))
        url = state.directory_link or "/users/delta"
        params = None if state.directory_link else {"$select": ",".join(USER_FIELDS)}
        while True:
            try:
                page = self.client.get("directory", url, READ_USERS, params)
            except CursorInvalid:
                if url == "/users/delta":
                    raise
                log.warning("source %s: the directory's delta token expired; reading the directory again", self.settings.name)
                url, params = "/users/delta", {"$select": ",".join(USER_FIELDS)}
                continue
            seen = [seen_user(u, directory, managers, self._manager_mail) for u in page.get("value", []) if u.get("id")]
            events = directory.changes(seen, scope)
            link = page.get("@odata.nextLink") or page.get("@odata.deltaLink") or ""
            state.directory_link, state.directory = link, {"people": directory.as_json(), "managers": managers}
            yield Batch(list(events), state.as_json())
            if "@odata.deltaLink" in page or not link:
                return
            url, params = link, None

    def _manager_mail(self, user_id: str) -> str:
        try:
            user = self.client.get("directory", f"/users/{user_id}", READ_USERS, {"$select": "mail,userPrincipalName"})
        except NotFound:
            return ""
        return user_addresses(user)[0]

    def _chains(self, chains: list[Chain], state: _Cursor) -> Iterator[Batch]:
        by_key = {chain.key: chain for chain in chains}
        for page in read_chains(list(by_key), lambda key: self._chain_pages(by_key[key], state.links.get(key, "")),
                                self.settings.workers, self.settings.name):
            if page.chain:
                state.links[page.chain] = page.position
            yield Batch(page.records, state.as_json(), page.skipped)

    def _chain_pages(self, chain: Chain, link: str) -> Iterator[Page]:
        url, params = (link, None) if link else self._start(chain)
        while True:
            try:
                page = self.client.get(chain.mailbox, url, self._needs(chain), params, self._prefer(chain))
            except CursorInvalid:
                if not link:
                    raise
                log.warning("source %s: %s: delta token expired; reading it again from the start", self.settings.name, chain.key)
                url, params = self._start(chain)
                link = ""
                continue
            records, skipped = self._records(chain, page.get("value", []))
            next_link = page.get("@odata.nextLink") or page.get("@odata.deltaLink") or ""
            last = "@odata.deltaLink" in page or not next_link
            yield Page(chain.key, records, skipped, next_link or url, last)
            if last:
                return
            url, params = next_link, None

    def _start(self, chain: Chain) -> tuple[str, dict[str, str]]:
        if chain.folder == "contacts":
            return f"/users/{chain.mailbox}/contacts/delta", {"$select": ",".join(("id", *CONTACT_FIELDS))}
        fields = ("id", *MESSAGE_FIELDS, *(("internetMessageHeaders",) if self.settings.noise_headers else ()))
        return f"/users/{chain.mailbox}/mailFolders/{chain.folder}/messages/delta", {"$select": ",".join(fields)}

    def _prefer(self, chain: Chain) -> tuple[str, ...]:
        size = min(self.page_size, CONTACTS_PAGE_CAP) if chain.folder == "contacts" else self.page_size
        return f"odata.maxpagesize={size}", 'IdType="ImmutableId"'

    def _needs(self, chain: Chain) -> str:
        return READ_CONTACTS if chain.folder == "contacts" else READ_MAIL

    def _records(self, chain: Chain, items: list[dict[str, Any]]) -> tuple[list[Record], list[Skipped]]:
        if chain.folder == "contacts":
            entries, skipped = contact_entries(items, chain.mailbox, self.settings.channel)
            return list(entries), skipped
        found, skipped = messages(items, chain.folder, self.settings.channel, chain.mailbox)
        return list(found), skipped


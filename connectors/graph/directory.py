"""Entra ID users as directory events: who joined the reps' scope, who was disabled or enabled
again, whose name, team, manager or aliases changed.

Graph's `/users/delta` says what a user is now, not what changed, so the source keeps the last
state of every user in scope in its cursor and compares. Each event's id is the user's id and a
per-user sequence number kept in that same state, so reading a page again after a crash gives
the same ids, and the departure flow, which acts once per id, acts once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from connectors.records import DirectoryEvent, DirectoryEventKind

USER_FIELDS = ("id", "displayName", "mail", "userPrincipalName", "accountEnabled", "proxyAddresses", "department",
               "manager")


@dataclass(frozen=True)
class Person:
    """What the directory said of a user in scope when last read."""

    mail: str
    name: str = ""
    team: str = ""
    enabled: bool = True
    manager: str = ""
    aliases: tuple[str, ...] = ()
    seq: int = 0
    in_scope: bool = True

    def watched(self) -> bool:
        return self.in_scope and self.enabled

    def profile(self) -> tuple[str, str, str, str, tuple[str, ...]]:
        return self.mail, self.name, self.team, self.manager, self.aliases

    def as_json(self) -> dict[str, Any]:
        return asdict(self) | {"aliases": list(self.aliases)}

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> Person:
        return cls(**(saved | {"aliases": tuple(saved.get("aliases", ()))}))


@dataclass(frozen=True)
class Scope:
    """Whose changes matter: the named mailboxes, the members of a group, the users of some domains."""

    mailboxes: frozenset[str] = frozenset()
    members: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    def covers(self, user_id: str, addresses: set[str]) -> bool:
        return (user_id in self.members or bool(addresses & self.mailboxes)
                or any(a.rpartition("@")[2] in self.domains for a in addresses))


def user_addresses(user: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The primary address and the other SMTP addresses (`proxyAddresses`: `SMTP:` marks the primary)."""
    primary = str(user.get("mail") or user.get("userPrincipalName") or "").strip().lower()
    proxies = [str(p) for p in user.get("proxyAddresses") or () if str(p).lower().startswith("smtp:")]
    marked = next((p[5:].lower() for p in proxies if p.startswith("SMTP:")), "")
    primary = primary or marked
    return primary, tuple(sorted({p[5:].lower() for p in proxies} - {primary, ""}))


@dataclass
class DirectoryState:
    """Every user ever in scope by id (one who left it stays, so their event numbers go on), and the
    addresses of managers outside it."""

    source: str
    people: dict[str, Person] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"people": {i: p.as_json() for i, p in self.people.items()}, "managers": dict(self.managers)}

    @classmethod
    def from_json(cls, source: str, saved: dict[str, Any] | None) -> DirectoryState:
        saved = saved or {}
        return cls(source, {i: Person.from_json(p) for i, p in saved.get("people", {}).items()},
                   dict(saved.get("managers", {})))

    def changes(self, users: list[dict[str, Any]], scope: Scope, manager_mail: Callable[[str], str]) -> list[DirectoryEvent]:
        """The events one page of `/users/delta` means, the state updated to match."""
        events: list[DirectoryEvent] = []
        for user in users:
            user_id = str(user.get("id") or "")
            if user_id:
                events += self._change(user_id, user, scope, manager_mail)
        return events

    def _change(self, user_id: str, user: dict[str, Any], scope: Scope,
                manager_mail: Callable[[str], str]) -> list[DirectoryEvent]:
        known = self.people.get(user_id)
        if "@removed" in user:
            if known is None:
                return []
            return self._record(user_id, replace(known, enabled=False), ["deactivated"] if known.watched() else [])
        primary, aliases = user_addresses(user)
        if not primary or not scope.covers(user_id, {primary, *aliases}):
            return self._record(user_id, replace(known, in_scope=False), []) if known else []
        now = self._merged(known, user, primary, aliases, manager_mail)
        if known is None or not known.in_scope:
            return self._record(user_id, now, ["updated" if now.enabled else "deactivated"])
        kinds: list[DirectoryEventKind] = ["updated"] if now.profile() != known.profile() else []
        if now.enabled != known.enabled:
            kinds.append("reactivated" if now.enabled else "deactivated")
        return self._record(user_id, now, kinds)

    def _record(self, user_id: str, person: Person, kinds: list[DirectoryEventKind]) -> list[DirectoryEvent]:
        """Keep the user's new state; each event takes the next number of the user's sequence, which
        is never reset, so an id once used is never used again for another event."""
        events = []
        for kind in kinds:
            person = replace(person, seq=person.seq + 1)
            events.append(DirectoryEvent(f"{self.source}:{user_id}:{person.seq}", kind, person.mail, person.name,
                                         person.manager, team=person.team, aliases=person.aliases))
        self.people[user_id] = person
        return events

    def _merged(self, known: Person | None, user: dict[str, Any], primary: str, aliases: tuple[str, ...],
                manager_mail: Callable[[str], str]) -> Person:
        """The user as the page says, keeping what the page leaves out (a minimal delta entry)."""
        base = known or Person(primary)
        manager = base.manager
        if "manager@delta" in user:
            linked = [m for m in user["manager@delta"] or () if isinstance(m, dict) and "@removed" not in m]
            manager = self._manager_address(str(linked[0].get("id", "")), manager_mail) if linked else ""
        enabled = user.get("accountEnabled", base.enabled)
        return Person(primary, str(user.get("displayName", base.name) or ""), str(user.get("department", base.team) or ""),
                      enabled is not False, manager, aliases if "proxyAddresses" in user else base.aliases, base.seq)

    def _manager_address(self, manager_id: str, manager_mail: Callable[[str], str]) -> str:
        if not manager_id:
            return ""
        if manager_id in self.people:
            return self.people[manager_id].mail
        if manager_id not in self.managers:
            self.managers[manager_id] = manager_mail(manager_id)
        return self.managers[manager_id]

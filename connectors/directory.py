"""What a company directory's view of a user means for custody: who joined the reps' scope, who
was disabled (or deleted) or enabled again, whose name, team, manager or aliases changed.

Directories say what a user is now, not what changed, so a source keeps the last state of every
user in scope in its cursor and compares. Each event's id is the source, the user's id and a
per-user sequence number kept in that same state, so a page read again after a crash gives the
same ids, and the departure flow, which acts once per id, acts once. Providers turn their own
JSON into `Seen` and keep the state; this module knows no provider.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from connectors.records import DirectoryEvent, DirectoryEventKind


@dataclass(frozen=True)
class Seen:
    """One user as the directory shows them now; None is a property the directory left out (a
    minimal delta entry), which keeps what was known."""

    user_id: str
    mail: str
    aliases: tuple[str, ...] | None = None
    name: str | None = None
    team: str | None = None
    enabled: bool | None = None
    manager: str | None = None
    removed: bool = False


@dataclass(frozen=True)
class Person:
    """What the directory said of a user when last read."""

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


@dataclass
class DirectoryState:
    """Every user ever in scope by id; one who left it stays, so their event numbers go on."""

    source: str
    people: dict[str, Person] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {i: p.as_json() for i, p in self.people.items()}

    @classmethod
    def from_json(cls, source: str, saved: dict[str, Any] | None) -> DirectoryState:
        return cls(source, {i: Person.from_json(p) for i, p in (saved or {}).items()})

    def mail_of(self, user_id: str) -> str | None:
        person = self.people.get(user_id)
        return person.mail if person else None

    def changes(self, users: list[Seen], scope: Scope) -> list[DirectoryEvent]:
        """The events one page of a directory means, the state updated to match."""
        return [event for user in users for event in self._change(user, scope)]

    def vanished(self, listed: set[str]) -> list[DirectoryEvent]:
        """For a directory read whole each time: a user known and not listed any more was deleted."""
        return [event for user_id, person in list(self.people.items())
                if user_id not in listed and person.enabled
                for event in self._change(Seen(user_id, person.mail, removed=True), Scope())]

    def _change(self, user: Seen, scope: Scope) -> list[DirectoryEvent]:
        known = self.people.get(user.user_id)
        if user.removed:
            if known is None:
                return []
            return self._record(user.user_id, replace(known, enabled=False), ["deactivated"] if known.watched() else [])
        addresses = {user.mail, *(user.aliases or ())}
        if not user.mail or not scope.covers(user.user_id, addresses):
            return self._record(user.user_id, replace(known, in_scope=False), []) if known else []
        now = _merged(known or Person(user.mail), user)
        if known is None or not known.in_scope:
            return self._record(user.user_id, now, ["updated" if now.enabled else "deactivated"])
        kinds: list[DirectoryEventKind] = ["updated"] if now.profile() != known.profile() else []
        if now.enabled != known.enabled:
            kinds.append("reactivated" if now.enabled else "deactivated")
        return self._record(user.user_id, now, kinds)

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


def _merged(base: Person, user: Seen) -> Person:
    """The user as seen, keeping what the directory left out."""
    return Person(user.mail, base.name if user.name is None else user.name, base.team if user.team is None else user.team,
                  base.enabled if user.enabled is None else user.enabled,
                  base.manager if user.manager is None else user.manager,
                  base.aliases if user.aliases is None else user.aliases, base.seq)

"""What a page of Entra ID's `/users/delta` means for custody: events for the users in scope only,
each once, with ids that come out the same when a page is read again after a crash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.directory import DirectoryState, Scope
from connectors.graph.directory import seen_user, user_addresses
from connectors.records import DirectoryEvent

SCOPE = Scope(mailboxes=frozenset({"ann@acme.test", "bob@acme.test"}))


def user(user_id: str, mail: str, **fields: Any) -> dict[str, Any]:
    return {"id": user_id, "mail": mail, "displayName": mail.split("@")[0].title(), "accountEnabled": True,
            "department": "Sales", "proxyAddresses": [f"SMTP:{mail}"], **fields}


def no_manager(_: str) -> str:
    raise AssertionError("no manager lookup expected")


def changes(state: DirectoryState, users: list[dict[str, Any]], lookup=no_manager,
            managers: dict[str, str] | None = None) -> list[DirectoryEvent]:
    """A page of `/users/delta` as the Graph source reads it."""
    return state.changes([seen_user(u, state, {} if managers is None else managers, lookup) for u in users], SCOPE)


def kinds(state: DirectoryState, users: list[dict[str, Any]], lookup=no_manager) -> list[tuple[str, str]]:
    return [(event.kind, event.email) for event in changes(state, users, lookup)]


def test_a_first_read_declares_the_users_in_scope_and_ignores_the_rest() -> None:
    state = DirectoryState("m365")

    assert kinds(state, [user("1", "ann@acme.test"), user("9", "zed@acme.test")]) == [("updated", "ann@acme.test")]


def test_disabling_then_enabling_a_rep_is_one_deactivation_then_one_reactivation() -> None:
    state = DirectoryState("m365")
    kinds(state, [user("1", "ann@acme.test")])

    assert kinds(state, [user("1", "ann@acme.test", accountEnabled=False)]) == [("deactivated", "ann@acme.test")]
    assert kinds(state, [user("1", "ann@acme.test", accountEnabled=False)]) == []
    assert kinds(state, [user("1", "ann@acme.test")]) == [("reactivated", "ann@acme.test")]


def test_a_user_disabled_at_first_sight_is_not_declared_a_rep() -> None:
    state = DirectoryState("m365")

    assert kinds(state, [user("1", "ann@acme.test", accountEnabled=False)]) == [("deactivated", "ann@acme.test")]


def test_a_deleted_rep_is_a_deactivation_and_a_restored_one_comes_back_with_fresh_event_ids() -> None:
    state = DirectoryState("m365")
    first = changes(state, [user("1", "ann@acme.test")])
    deleted = changes(state, [{"id": "1", "@removed": {"reason": "changed"}}])
    restored = changes(state, [user("1", "ann@acme.test")])

    assert [e.kind for e in deleted] == ["deactivated"] and [e.kind for e in restored] == ["reactivated"]
    ids = [e.event_id for e in first + deleted + restored]
    assert len(set(ids)) == 3 and all(i.startswith("m365:1:") for i in ids)


def test_reading_a_page_again_from_the_stored_state_gives_the_same_event_ids() -> None:
    state = DirectoryState("m365")
    changes(state, [user("1", "ann@acme.test")])
    saved = state.as_json()
    page = [user("1", "ann@acme.test", accountEnabled=False), user("2", "bob@acme.test")]

    once = changes(DirectoryState.from_json("m365", saved), page)
    again = changes(DirectoryState.from_json("m365", saved), page)

    assert [e.event_id for e in once] == [e.event_id for e in again] and len(once) == 2


def test_a_manager_outside_the_scope_is_looked_up_once_and_a_profile_change_is_one_update() -> None:
    state = DirectoryState("m365")
    looked_up: list[str] = []
    managers: dict[str, str] = {}

    def lookup(user_id: str) -> str:
        looked_up.append(user_id)
        return "boss@acme.test"

    manager = [{"@odata.type": "#microsoft.graph.user", "id": "77"}]
    first = changes(state, [user("1", "ann@acme.test", **{"manager@delta": manager})], lookup, managers)
    moved = changes(state, [user("1", "ann@acme.test", department="Key accounts",
                                **{"manager@delta": manager})], lookup, managers)

    assert first[0].manager_email == "boss@acme.test" and looked_up == ["77"]
    assert [(e.kind, e.team, e.manager_email) for e in moved] == [("updated", "Key accounts", "boss@acme.test")]


def test_a_minimal_entry_changes_only_what_it_carries() -> None:
    state = DirectoryState("m365")
    changes(state, [user("1", "ann@acme.test", department="Sales")])

    events = changes(state, [{"id": "1", "mail": "ann@acme.test", "accountEnabled": False}])

    assert [(e.kind, e.team) for e in events] == [("deactivated", "Sales")]


def test_aliases_come_from_the_smtp_proxy_addresses_and_scope_matches_any_of_them() -> None:
    entry = user("3", "carl@acme.test", proxyAddresses=["SMTP:carl@acme.test", "smtp:Carl.Old@Acme.test", "SIP:carl@x"])

    assert user_addresses(entry) == ("carl@acme.test", ("carl.old@acme.test",))
    assert Scope(mailboxes=frozenset({"carl.old@acme.test"})).covers("3", {"carl@acme.test", "carl.old@acme.test"})
    assert Scope(domains=frozenset({"acme.test"})).covers("3", {"carl@acme.test"})


@dataclass
class Account:
    mail: str
    enabled: bool = True
    team: str = "Sales"
    deleted: bool = False

    def entry(self, user_id: str) -> dict[str, Any]:
        if self.deleted:
            return {"id": user_id, "@removed": {"reason": "changed"}}
        return user(user_id, self.mail, accountEnabled=self.enabled, department=self.team)

    def active(self) -> bool:
        return self.enabled and not self.deleted


CHANGES = st.lists(st.tuples(st.integers(0, 1), st.sampled_from(["toggle", "team", "delete", "restore"]), st.booleans()),
                   max_size=25)


@given(CHANGES)
@settings(max_examples=150, deadline=None)
def test_any_history_of_changes_gives_alternating_departures_and_returns_with_ids_never_reused(
        history: list[tuple[int, str, bool]]) -> None:
    accounts = [Account("ann@acme.test"), Account("bob@acme.test")]
    state = DirectoryState("m365")
    seen: list[DirectoryEvent] = list(changes(state, [a.entry(str(i)) for i, a in enumerate(accounts)]))
    for index, change, crash in history:
        account = accounts[index]
        was_active = account.active()
        if change == "toggle":
            account.enabled = not account.enabled
        elif change == "team":
            account.team = "Key accounts" if account.team == "Sales" else "Sales"
        else:
            account.deleted = change == "delete"
        saved = state.as_json()
        events = changes(state, [account.entry(str(index))])
        if crash:
            assert changes(DirectoryState.from_json("m365", saved), [account.entry(str(index))]) == events
        moves = [e.kind for e in events if e.kind in ("deactivated", "reactivated")]
        expected = [] if was_active == account.active() else ["reactivated" if account.active() else "deactivated"]
        assert moves == expected
        seen += events
    assert len({e.event_id for e in seen}) == len(seen)

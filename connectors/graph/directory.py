"""Entra ID's `/users/delta` entries as `Seen` users: addresses from `mail` and the SMTP
`proxyAddresses`, the team from `department`, the manager from `manager@delta` (an id, whose
address comes from the users in scope, a cache kept in the cursor, or one lookup)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.directory import DirectoryState, Seen

USER_FIELDS = ("id", "displayName", "mail", "userPrincipalName", "accountEnabled", "proxyAddresses", "department",
               "manager")


def user_addresses(user: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The primary address and the other SMTP addresses (`proxyAddresses`: `SMTP:` marks the primary)."""
    primary = str(user.get("mail") or user.get("userPrincipalName") or "").strip().lower()
    proxies = [str(p) for p in user.get("proxyAddresses") or () if str(p).lower().startswith("smtp:")]
    marked = next((p[5:].lower() for p in proxies if p.startswith("SMTP:")), "")
    primary = primary or marked
    return primary, tuple(sorted({p[5:].lower() for p in proxies} - {primary, ""}))


def seen_user(user: dict[str, Any], state: DirectoryState, managers: dict[str, str],
              manager_mail: Callable[[str], str]) -> Seen:
    """One delta entry; `managers` caches the addresses of managers outside the scope."""
    user_id = str(user.get("id") or "")
    if "@removed" in user:
        return Seen(user_id, state.mail_of(user_id) or "", removed=True)
    primary, aliases = user_addresses(user)
    manager = None
    if "manager@delta" in user:
        linked = [m for m in user["manager@delta"] or () if isinstance(m, dict) and "@removed" not in m]
        manager_id = str(linked[0].get("id", "")) if linked else ""
        manager = _manager_address(manager_id, state, managers, manager_mail)
    enabled = user.get("accountEnabled")
    return Seen(user_id, primary, aliases if "proxyAddresses" in user else None,
                str(user.get("displayName") or "") if "displayName" in user else None,
                str(user.get("department") or "") if "department" in user else None,
                None if enabled is None else enabled is not False, manager)


def _manager_address(manager_id: str, state: DirectoryState, managers: dict[str, str],
                     manager_mail: Callable[[str], str]) -> str:
    if not manager_id:
        return ""
    known = state.mail_of(manager_id)
    if known is not None:
        return known
    if manager_id not in managers:
        managers[manager_id] = manager_mail(manager_id)
    return managers[manager_id]

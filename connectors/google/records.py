"""Google's JSON as custody's plain records: Gmail metadata, People contacts, Directory users.

Gmail's metadata format gives the requested header fields as they are in the message, so they
are put back together as a header block and read by the same parser as IMAP and maildir mail:
one message read through any protocol is the same record.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from connectors.directory import Seen
from connectors.headers import DateFallback, read_message
from connectors.records import AddressBookEntry, Channel, MessageHeaders, Skipped

METADATA_HEADERS = ("From", "To", "Cc", "Bcc", "Reply-To", "Date", "Message-ID", "Subject", "In-Reply-To", "Received",
                    "Auto-Submitted", "Precedence", "List-Id", "Return-Path", "Content-Type")
NOT_MAIL = frozenset({"SPAM", "TRASH", "DRAFT", "CHAT"})
PERSON_FIELDS = "names,emailAddresses,phoneNumbers,organizations,metadata"


def message_record(item: dict[str, Any], mailbox: str, channel: Channel) -> tuple[MessageHeaders | None, list[Skipped]]:
    """A message's record; None without a skip for spam, trash and drafts, which are not mail sent or received."""
    labels = set(item.get("labelIds") or ())
    if labels & NOT_MAIL:
        return None, []
    folder = "sent" if "SENT" in labels else "inbox"
    headers = (item.get("payload") or {}).get("headers") or []
    raw = "".join(f"{h.get('name')}: {h.get('value')}\r\n" for h in headers if isinstance(h, dict) and h.get("name"))
    received = _internal_date(item.get("internalDate"))
    return read_message(raw.encode("utf-8", "surrogateescape") + b"\r\n", f"{mailbox}/{item.get('id', '?')}", folder,
                        channel, DateFallback("internaldate", lambda: received))


def contact_entry(person: dict[str, Any], mailbox: str, channel: Channel) -> AddressBookEntry | None:
    """A People connection as the mailbox owner's address-book entry; a deleted one is marked removed."""
    name = str(person.get("resourceName") or "")
    if not name:
        return None
    if (person.get("metadata") or {}).get("deleted"):
        return AddressBookEntry(f"google:{mailbox}", name, "", (), (), channel=channel, owner=mailbox, removed=True)
    names = [n.get("displayName", "") for n in person.get("names") or () if isinstance(n, dict)]
    emails = tuple(str(e["value"]) for e in person.get("emailAddresses") or () if isinstance(e, dict) and e.get("value"))
    phones = tuple(str(p["value"]) for p in person.get("phoneNumbers") or () if isinstance(p, dict) and p.get("value"))
    organisations = [o.get("name", "") for o in person.get("organizations") or () if isinstance(o, dict)]
    return AddressBookEntry(f"google:{mailbox}", name, str(names[0] if names else ""), emails, phones,
                            str(organisations[0] if organisations else ""), channel, mailbox)


def seen_user(user: dict[str, Any]) -> Seen:
    """A Directory user: suspended or archived is not enabled; the team is the primary
    organisation's department, the manager the relation of type manager."""
    organisations = [o for o in user.get("organizations") or () if isinstance(o, dict)]
    primary = next((o for o in organisations if o.get("primary")), organisations[0] if organisations else {})
    manager = next((str(r.get("value", "")) for r in user.get("relations") or ()
                    if isinstance(r, dict) and r.get("type") == "manager"), "")
    return Seen(str(user.get("id") or ""), str(user.get("primaryEmail") or "").lower(),
                tuple(sorted(str(a).lower() for a in user.get("aliases") or ())),
                str((user.get("name") or {}).get("fullName") or ""), str(primary.get("department") or ""),
                not (user.get("suspended") or user.get("archived")), manager.lower())


def _internal_date(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None

"""Graph's JSON as custody's plain records: messages, contacts and directory users.

Graph gives the header facts as properties, so nothing here parses RFC 5322; what the noise rules
read from headers (Auto-Submitted, Precedence, List-Id, Return-Path) comes from
`internetMessageHeaders`, asked for only when the source says so.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from connectors.headers import MAX_ADDRESSES, message_key
from connectors.records import Address, AddressBookEntry, Channel, MessageHeaders, Skipped

MESSAGE_FIELDS = ("internetMessageId", "subject", "from", "sender", "toRecipients", "ccRecipients", "bccRecipients",
                  "replyTo", "sentDateTime", "receivedDateTime", "conversationId")
CONTACT_FIELDS = ("displayName", "emailAddresses", "businessPhones", "homePhones", "mobilePhone", "companyName")
_FRACTION = re.compile(r"(\.\d{6})\d+")
_NOISE_HEADERS = ("auto-submitted", "precedence", "list-id", "return-path", "content-type", "in-reply-to")


def graph_time(value: Any) -> datetime | None:
    """An ISO 8601 time as Graph writes it (up to seven fractional digits, `Z`), in UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def message_record(item: dict[str, Any], folder: str, channel: Channel, ref: str) -> tuple[MessageHeaders | None, str]:
    """The record, or None and why the message cannot become one."""
    sender = _addresses([item.get("from")]) or _addresses([item.get("sender")])
    if not sender:
        return None, "no usable From address"
    date, date_source = graph_time(item.get("sentDateTime")), "header"
    if date is None:
        date, date_source = graph_time(item.get("receivedDateTime")), "delivery"
    if date is None:
        return None, "missing or invalid sentDateTime and receivedDateTime"
    headers = _noise_headers(item.get("internetMessageHeaders"))
    to, subject = _addresses(item.get("toRecipients")), str(item.get("subject") or "")
    return MessageHeaders(
        message_id=message_key(item.get("internetMessageId") or "", sender, to, date, subject), folder=folder, date=date,
        sender=sender, to=to, cc=_addresses(item.get("ccRecipients")),
        bcc=_addresses(item.get("bccRecipients")), reply_to=_addresses(item.get("replyTo")),
        subject=subject, in_reply_to=headers.get("in-reply-to", ""),
        auto_submitted=headers.get("auto-submitted", "").lower(), precedence=headers.get("precedence", "").lower(),
        list_id=headers.get("list-id", ""), content_type=headers.get("content-type", "").split(";", 1)[0].strip().lower(),
        return_path=headers.get("return-path", ""), channel=channel, date_source=date_source,  # type: ignore[arg-type]
    ), ""


def messages(
    items: list[dict[str, Any]], folder: str, channel: Channel, mailbox: str
) -> tuple[list[MessageHeaders], list[Skipped]]:
    """A page's messages; tombstones of deleted ones are passed over, as what was said stays said."""
    records: list[MessageHeaders] = []
    skipped: list[Skipped] = []
    for item in items:
        if "@removed" in item:
            continue
        ref = f"{mailbox}/{folder}/{item.get('id', '?')}"
        try:
            record, reason = message_record(item, folder, channel, ref)
        except (TypeError, AttributeError, ValueError) as error:
            record, reason = None, f"unreadable message: {type(error).__name__}"
        if record is None:
            skipped.append(Skipped(ref, reason))
        else:
            records.append(record)
    return records, skipped


def contact_entries(items: list[dict[str, Any]], mailbox: str, channel: Channel) -> tuple[list[AddressBookEntry], list[Skipped]]:
    """A page's contacts as the mailbox owner's address-book entries; a deleted one is an entry
    marked removed, so the registry stops counting it as a way to reach anyone."""
    entries: list[AddressBookEntry] = []
    skipped: list[Skipped] = []
    for item in items:
        entry_id = str(item.get("id") or "")
        if not entry_id:
            skipped.append(Skipped(f"{mailbox}/contacts/?", "contact without an id"))
            continue
        if "@removed" in item:
            entries.append(AddressBookEntry(f"graph:{mailbox}", entry_id, "", (), (), channel=channel, owner=mailbox,
                                            removed=True))
            continue
        emails = tuple(str(e.get("address") or "") for e in item.get("emailAddresses") or () if isinstance(e, dict))
        phones = tuple(str(p) for p in [*(item.get("businessPhones") or ()), *(item.get("homePhones") or ()),
                                        item.get("mobilePhone")] if p)
        entries.append(AddressBookEntry(f"graph:{mailbox}", entry_id, str(item.get("displayName") or ""),
                                        tuple(e for e in emails if e), phones, str(item.get("companyName") or ""),
                                        channel, mailbox))
    return entries, skipped


def _addresses(values: Any) -> tuple[Address, ...]:
    found: list[Address] = []
    for value in values or ():
        box = value.get("emailAddress") if isinstance(value, dict) else None
        if isinstance(box, dict) and box.get("address"):
            found.append(_address(str(box.get("name") or ""), str(box["address"]).strip()))
        if len(found) == MAX_ADDRESSES:
            break
    return tuple(found)


@lru_cache(maxsize=65536)
def _address(name: str, email: str) -> Address:
    """One object per correspondent: a mailbox names the same few thousand people across its
    messages, and fewer objects are less for the garbage collector to scan during a long sync."""
    return Address(name, email)


def _noise_headers(values: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in values or ():
        if isinstance(header, dict) and str(header.get("name", "")).lower() in _NOISE_HEADERS:
            found.setdefault(str(header["name"]).lower(), str(header.get("value") or ""))
    return found

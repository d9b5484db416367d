"""Enron maildir messages as Graph message JSON, to fill a fake mailbox with real corporate traffic.

Only headers are parsed: the connector reads addresses and dates, never bodies, and header-only
parsing keeps a benchmark's setup fast. The corpus may be absent; callers skip then.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

from tests.servers.enron_folders import converted_mail


def enron_mailbox_messages(user_folder: Path, limit: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields ("inbox" | "sentitems", message JSON) for the user's inbox and sent folders, skipping unparseable files."""
    for sent, message in converted_mail(user_folder, _graph_message, limit):
        yield ("sentitems" if sent else "inbox"), message


def _graph_message(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            headers = BytesHeaderParser(policy=compat32).parse(handle)
        sent = parsedate_to_datetime(str(headers["Date"])).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sender = _recipients(str(headers["From"] or ""), str(headers["X-From"] or ""))
    except (OSError, TypeError, ValueError, IndexError):
        return None
    if not sender or not headers["Message-ID"]:
        return None
    return {
        "internetMessageId": str(headers["Message-ID"]).strip(),
        "subject": str(headers["Subject"] or ""),
        "from": sender[0],
        "sender": sender[0],
        "toRecipients": _recipients(str(headers["To"] or ""), str(headers["X-To"] or "")),
        "ccRecipients": _recipients(str(headers["Cc"] or ""), str(headers["X-cc"] or "")),
        "bccRecipients": _recipients(str(headers["Bcc"] or ""), str(headers["X-bcc"] or "")),
        "replyTo": _recipients(str(headers["Reply-To"] or ""), ""),
        "sentDateTime": sent,
        "receivedDateTime": sent,
        "conversationId": _conversation_id(str(headers["Subject"] or "")),
    }


def _conversation_id(subject: str) -> str:
    """Replies share a thread id as Exchange's conversationId would: the subject without reply prefixes."""
    topic = subject.strip()
    while topic[:3].lower() in ("re:", "fw:"):
        topic = topic[3:].strip()
    return "AAQkA" + hashlib.sha1(topic.lower().encode()).hexdigest()


def _recipients(addresses: str, names: str) -> list[dict[str, Any]]:
    """Graph recipients; Enron's X- headers carry the display names, used only when they line up one to one."""
    parsed = [(name, address) for name, address in getaddresses([addresses]) if "@" in address]
    display = [names] if len(parsed) == 1 else names.split(",")
    display = [re.sub(r"\s*<[^>]*>", "", name).strip() for name in display if names.strip()]
    if len(display) != len(parsed):
        display = [name for name, _ in parsed]
    return [{"emailAddress": {"name": shown or address.split("@")[0], "address": address.lower()}}
            for shown, (_, address) in zip(display, parsed, strict=True)]

"""Build RFC 5322 messages and mail folders for tests, the way a mail client would write them."""

from __future__ import annotations

import mailbox
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def message(
    sender: str,
    to: str,
    *,
    subject: str = "Quarterly order",
    date: datetime = START,
    message_id: str | None = None,
    cc: str = "",
    headers: dict[str, str] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(date)
    if message_id:
        mail["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content("Hello,\nsee attached figures.\n")
    return mail.as_bytes()


def conversation(rep: str, customers: list[str], count: int, prefix: str = "m") -> list[bytes]:
    """`count` messages alternating between a rep writing and customers answering, one hour apart."""
    mails = []
    for n in range(count):
        customer = customers[n % len(customers)]
        sender, recipient = (rep, customer) if n % 2 == 0 else (customer, rep)
        mails.append(message(sender, recipient, subject=f"Order {n}", date=START + timedelta(hours=n),
                             message_id=f"<{prefix}{n}@mail.test>"))
    return mails


def write_maildir(root: Path, folders: dict[str, list[bytes]]) -> Path:
    """A Maildir++ tree as Dovecot keeps it: INBOX at the root, other folders as .Name."""
    for part in ("tmp", "new", "cur"):
        (root / part).mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(root)
    for folder, mails in folders.items():
        target = box if folder == "INBOX" else box.add_folder(folder)
        for raw in mails:
            target.add(raw)
    return root

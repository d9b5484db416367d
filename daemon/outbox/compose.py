"""The outgoing message of a planned notification, refusing anything that could inject headers.

Planning renders and sanitises the content, but the row is data in a database: the dispatcher checks
it again, so a bad row is refused instead of sent, whoever wrote it. The sender's display name goes
through email.headerregistry.Address, which quotes specials and encodes non-ASCII (RFC 2047), so a
name like `Wang, "Lei" <x@y>` or 王磊 stays one display name of the one sender address.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from policies.header_safety import UnsafeHeaderError, safe_address


@dataclass(frozen=True)
class Letter:
    message_id: str
    sender: str
    to: str
    cc: tuple[str, ...]
    subject: str
    text: str
    html: str
    sender_name: str = ""


class UnsafeMessage(ValueError):
    """A notification whose headers would carry control characters or malformed addresses."""


def compose(letter: Letter, date: datetime) -> EmailMessage:
    _check_line("Message-ID", letter.message_id)
    _check_line("Subject", letter.subject)
    _check_line("From display name", letter.sender_name)
    if not (letter.message_id.startswith("<") and letter.message_id.endswith(">") and "@" in letter.message_id):
        raise UnsafeMessage(f"Message-ID {letter.message_id!r} is not of the form <id@domain>")
    message = EmailMessage(policy=SMTP)
    message["Message-ID"] = letter.message_id
    message["Date"] = format_datetime(date)
    message["From"] = Address(display_name=letter.sender_name, addr_spec=_address("From", letter.sender))
    message["To"] = _address("To", letter.to)
    if letter.cc:
        message["Cc"] = ", ".join(_address("Cc", cc) for cc in letter.cc)
    message["Subject"] = letter.subject
    message.set_content(letter.text)
    if letter.html:
        message.add_alternative(letter.html, subtype="html")
    return message


def _address(header: str, address: str) -> str:
    try:
        return safe_address(address)
    except UnsafeHeaderError as error:
        raise UnsafeMessage(f"{header}: {error}") from None


def _check_line(header: str, value: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        raise UnsafeMessage(f"{header} {value!r} contains a line break or control character")

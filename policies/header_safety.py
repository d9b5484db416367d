"""Text that may end up in a mail header: CR, LF and other control characters never get through.

A contact's name or a rendered subject comes from mail we synced, so it is attacker-controlled.
Display text is sanitised (control characters become spaces); an address is rejected outright,
because a repaired address would be a different recipient.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

_SPACES = re.compile(r"\s+")


class UnsafeHeaderError(ValueError):
    """An address that cannot be put in a header as it is."""


def safe_header_text(text: str, max_length: int = 200) -> str:
    """One line of display text: controls and line or paragraph separators become single spaces."""
    visible = text if text.isprintable() else "".join(" " if _is_control(ch) else ch for ch in text)
    line = _SPACES.sub(" ", visible).strip()
    return line if len(line) <= max_length else line[: max_length - 1].rstrip() + "…"


@lru_cache(maxsize=4096)
def safe_address(address: str) -> str:
    """The address itself, checked: one syntactically valid addr-spec without controls or separators."""
    if any(_is_control(ch) for ch in address) or any(ch in address for ch in ' ,;<>()"'):
        raise UnsafeHeaderError(f"address {address!r} contains characters not allowed in a header")
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=True, test_environment=True)
    except EmailNotValidError as error:
        raise UnsafeHeaderError(f"address {address!r} is not valid: {error}") from None
    return address


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") or ch == "\x7f"

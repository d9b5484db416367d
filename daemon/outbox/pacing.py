"""Whether a message may go now: quiet hours in the recipient's zone and rolling hourly rate limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.policy import DispatchRules, QuietHours

WINDOW = timedelta(hours=1)


def in_quiet_hours(quiet: QuietHours | None, zone: str, now: datetime) -> bool:
    """True while the recipient's local clock is inside the quiet window; an unknown zone is never quiet."""
    if quiet is None or not zone:
        return False
    try:
        local = now.astimezone(ZoneInfo(zone)).time()
    except (ZoneInfoNotFoundError, ValueError):
        return False
    start, end = time.fromisoformat(quiet.start), time.fromisoformat(quiet.end)
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class RateLimits:
    """Counts sends in the last hour per sending mailbox and per recipient domain."""

    def __init__(self, rules: DispatchRules, recent: Iterable[tuple[str, str]]) -> None:
        self.rules = rules
        self.by_mailbox: Counter[str] = Counter()
        self.by_domain: Counter[str] = Counter()
        for sender, recipient in recent:
            self.record(sender, recipient)

    def blocked(self, sender: str, recipient: str) -> str:
        """Why this message must wait, or '' when it may go."""
        mailbox_limit, domain_limit = self.rules.per_mailbox_per_hour, self.rules.per_domain_per_hour
        if mailbox_limit and self.by_mailbox[sender.lower()] >= mailbox_limit:
            return f"{sender} reached {mailbox_limit} messages per hour"
        if domain_limit and self.by_domain[domain_of(recipient)] >= domain_limit:
            return f"{domain_of(recipient)} reached {domain_limit} messages per hour"
        return ""

    def record(self, sender: str, recipient: str) -> None:
        self.by_mailbox[sender.lower()] += 1
        self.by_domain[domain_of(recipient)] += 1

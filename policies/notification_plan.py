"""Which change-of-contact messages a handover sends: to whom, from whom, when, in which language.

Pure. The idempotency key and the Message-ID derive only from (handover, contact, step), so planning
the same handover again yields the same rows, and the outbox can find a send left in doubt by
its Message-ID in the sending mailbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.policy import NotificationRules, NotificationStep
from config.sections import ConfigError
from policies.header_safety import UnsafeHeaderError, safe_address
from policies.ownership import RepProfile


@dataclass(frozen=True)
class Recipient:
    """A contact who had company-channel mail with the departing rep, at the point used last."""

    customer_id: int
    contact_id: int
    contact_point_id: int
    email: str
    registry_locale: str = ""


@dataclass(frozen=True)
class PlannedMessage:
    idempotency_key: str
    message_id_header: str
    customer_id: int
    contact_id: int
    contact_point_id: int
    step: str
    template: str
    sender_email: str
    to_email: str
    cc_emails: tuple[str, ...]
    locale: str
    send_after: datetime


@dataclass(frozen=True)
class Rejected:
    contact_id: int
    email: str
    reason: str


def idempotency_key(handover_id: int, contact_id: int, step: str) -> str:
    return hashlib.sha256(f"custody-handover:{handover_id}:{contact_id}:{step}".encode()).hexdigest()


def message_id_for(key: str, sender_email: str) -> str:
    domain = sender_email.rpartition("@")[2].encode("idna").decode("ascii")
    return f"<custody.{key}@{domain}>"


def locale_for(recipient: Recipient, rules: NotificationRules, available: Collection[str]) -> str:
    """The registry's locale, else the longest matching domain suffix, else the default; always one with templates."""
    for locale in (recipient.registry_locale, _domain_locale(recipient.email, rules), rules.default_locale):
        for candidate in (locale, _language(locale)):
            if candidate and candidate in available:
                return candidate
    return rules.default_locale


def _domain_locale(email: str, rules: NotificationRules) -> str:
    domain = "." + email.rpartition("@")[2].lower()
    matching = [s for s in rules.locale_by_domain_suffix if domain.endswith("." + s.lower().lstrip("."))]
    return rules.locale_by_domain_suffix[max(matching, key=len)] if matching else ""


def _language(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower()


def step_times(effective_at: datetime, planned_at: datetime, grace_period_hours: int,
               steps: Sequence[NotificationStep]) -> dict[str, datetime]:
    """Each step's day relative to the effective date, never inside the grace period after planning,
    and never before an earlier step: a late plan still says farewell before the successor writes."""
    earliest = planned_at + timedelta(hours=grace_period_hours)
    times = {}
    for step in steps:
        earliest = max(earliest, effective_at + timedelta(days=step.days_from_effective))
        times[step.name] = earliest
    return times


def plan_messages(
    handover_id: int,
    effective_at: datetime,
    planned_at: datetime,
    grace_period_hours: int,
    recipients: Sequence[Recipient],
    successors: Mapping[int, RepProfile | None],
    rules: NotificationRules,
    available_locales: Collection[str],
) -> tuple[list[PlannedMessage], list[Rejected]]:
    """Every (contact, step) message of a handover, plus the contacts whose address cannot be mailed safely."""
    if not rules.shared_mailbox and any(s.sender == "shared" for s in rules.steps):
        raise ConfigError("policy.notifications.shared_mailbox: required by steps with sender 'shared'")
    times = step_times(effective_at, planned_at, grace_period_hours, rules.steps)
    planned: list[PlannedMessage] = []
    rejected: list[Rejected] = []
    for recipient in recipients:
        try:
            to_email = safe_address(recipient.email)
        except UnsafeHeaderError as error:
            rejected.append(Rejected(recipient.contact_id, recipient.email, str(error)))
            continue
        successor = successors.get(recipient.customer_id)
        locale = locale_for(recipient, rules, available_locales)
        for step in rules.steps:
            if step.sender == "successor" and successor is None:
                continue
            sender = safe_address(successor.email if step.sender == "successor" and successor else rules.shared_mailbox)
            cc = (safe_address(successor.email),) if successor and step.cc_successor and successor.email != sender else ()
            key = idempotency_key(handover_id, recipient.contact_id, step.name)
            planned.append(PlannedMessage(
                idempotency_key=key, message_id_header=message_id_for(key, sender),
                customer_id=recipient.customer_id, contact_id=recipient.contact_id,
                contact_point_id=recipient.contact_point_id, step=step.name, template=step.template,
                sender_email=sender, to_email=to_email, cc_emails=cc, locale=locale,
                send_after=times[step.name],
            ))
    return planned, rejected

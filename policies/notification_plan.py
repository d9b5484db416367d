"""Which change-of-contact messages a departure sends: to whom, from whom, when, in which language.

Pure. The idempotency key and the Message-ID derive only from (departure, contact point, step): the
departure is the rep and their tenure, not the plan, so no plan, cancellation or re-plan of one
departure can mail a customer the same step twice, and the outbox can find a send left in doubt by
its Message-ID in the sending mailbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from config.policy import NotificationRules, NotificationStep
from config.sections import ConfigError
from policies.header_safety import UnsafeHeaderError, safe_address, safe_header_text
from registry.departure_values import Recipient, RepProfile


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
    successor_rep_id: int | None = None


@dataclass(frozen=True)
class Rejected:
    contact_id: int
    email: str
    reason: str


def departure_key(rep_id: int, tenure: int) -> str:
    """One departure of one rep: a rehire starts a new tenure, and leaving again is a new departure."""
    return f"{rep_id}.{tenure}"


def idempotency_key(departure: str, contact_point_id: int, step: str) -> str:
    return hashlib.sha256(f"custody-departure:{departure}:{contact_point_id}:{step}".encode()).hexdigest()


def correction_step(successor: RepProfile | None) -> str:
    """A correction names its successor, so a customer told two wrong names in a row gets one
    correction per name, and never the same one twice."""
    return f"correction-{successor.id if successor else 'pool'}"


def message_id_for(key: str, sender_email: str) -> str:
    domain = sender_email.rpartition("@")[2].encode("idna").decode("ascii")
    return f"<custody.{key}@{domain}>"


def locale_for(recipient: Recipient, rules: NotificationRules, available: Collection[str]) -> str:
    """The first language known for the recipient: the registry's (contact, else customer), else the
    one of their email domain, else the policy's default. When no templates exist for it, the default:
    a language someone stated is never swapped for a guess from their domain."""
    wanted = recipient.registry_locale or _domain_locale(recipient.email, rules) or rules.default_locale
    for locale in (wanted, rules.default_locale):
        for candidate in (locale, _language(locale)):
            if candidate in available:
                return candidate
    return rules.default_locale


def _domain_locale(email: str, rules: NotificationRules) -> str:
    """The policy's table first (the longest matching suffix wins), then the country of the top-level domain."""
    domain = "." + email.rpartition("@")[2].lower().rstrip(".")
    matching = [s for s in rules.locale_by_domain_suffix if domain.endswith("." + s.lower().lstrip("."))]
    if matching:
        return rules.locale_by_domain_suffix[max(matching, key=len)]
    return COUNTRY_LOCALES.get(domain.rpartition(".")[2], "")


def _language(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower()


COUNTRY_LOCALES: dict[str, str] = {
    **dict.fromkeys(("de", "at", "li"), "de"), "ch": "de-CH",
    **dict.fromkeys(("fr", "mc", "re", "gp", "mq", "gf", "yt", "pf", "nc", "pm", "sn", "ci", "ml", "bf", "ne", "tg",
                     "bj", "ga", "cg", "cd", "ht"), "fr"),
    **dict.fromkeys(("es", "mx", "ar", "cl", "pe", "ve", "ec", "gt", "cu", "bo", "do", "hn", "py", "sv", "ni", "cr",
                     "pa", "uy"), "es"),
    "jp": "ja", "cn": "zh-CN", "hk": "zh-HK", "mo": "zh-MO", "tw": "zh-TW",
    **dict.fromkeys(("it", "sm"), "it"), **dict.fromkeys(("pt", "br"), "pt"), "nl": "nl", "pl": "pl", "cz": "cs",
    "se": "sv", "dk": "da", "no": "nb", "fi": "fi", "kr": "ko", "ru": "ru", "tr": "tr", "gr": "el",
}
"""The language of a country-code domain, for the countries where one language is the safe guess.

Multilingual countries where a wrong guess offends (.be, .ca, .lu, .cm, the Maghreb) are left out, and
so are country codes sold as generic names (.co, .io, .me, .tv): their contacts get their stored
language or the default. Region tags (de-CH, zh-TW) let a company ship a regional set; without one the
language's set is used. Languages without shipped templates are here for companies that add theirs."""


_MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
}
_DATE_PATTERNS: dict[str, str] = {
    "en": "{day} {month} {year}", "de": "{day}. {month} {year}", "fr": "{day} {month} {year}",
    "es": "{day} de {month} de {year}", "ja": "{year}年{number}月{day}日", "zh": "{year}年{number}月{day}日",
}


def local_date(day: date, locale: str) -> str:
    """`day` as a letter in that language writes it (babel is not a dependency for six patterns);
    ISO 8601, which every reader can parse, for a language without a pattern here."""
    language = _language(locale)
    pattern = _DATE_PATTERNS.get(language)
    if pattern is None:
        return day.isoformat()
    months = _MONTHS.get(language)
    return pattern.format(day="1er" if language == "fr" and day.day == 1 else day.day, year=day.year,
                          number=day.month, month=months[day.month - 1] if months else "")


@dataclass(frozen=True)
class LetterNames:
    """Whom a letter names, each by the best name the registry has; empty when it has none."""

    contact: str
    customer: str
    departing: str
    departing_email: str


def sender_name(message: PlannedMessage, successor: RepProfile | None, rules: NotificationRules) -> str:
    """The From display name: the successor's own name on mail from their address, else the policy's
    sender name (by default the company's), so a customer sees who writes before opening the letter."""
    if successor is not None and message.sender_email == successor.email:
        name = successor.name
    else:
        name = rules.sender_name or rules.company_name
    return safe_header_text(name, 128)


def letter_context(message: PlannedMessage, names: LetterNames, successor: RepProfile | None,
                   rules: NotificationRules, effective_at: datetime) -> dict[str, Any]:
    """Every variable a template gets; daemon/outbox/letters.py says what each one means.

    `before_effective` compares the planned send time with the effective date, so a farewell planned
    two days ahead says who *will* look after the customer, and one planned late says who does."""
    sender = sender_name(message, successor, rules)
    return {
        "locale": message.locale,
        "contact_name": names.contact,
        "customer_name": names.customer,
        "company_name": rules.company_name,
        "departing_name": names.departing or names.departing_email,
        "departing_email": names.departing_email,
        "successor_name": (successor.name or successor.email) if successor else "",
        "successor_email": successor.email if successor else "",
        "shared_mailbox": rules.shared_mailbox,
        "successor_copied": successor is not None and successor.email in message.cc_emails,
        "sender_name": sender,
        "sender_email": message.sender_email,
        "signature_lines": signature_lines(rules, sender),
        "effective_date": effective_at.date(),
        "effective_date_text": local_date(effective_at.date(), message.locale),
        "before_effective": message.send_after < effective_at,
    }


def signature_lines(rules: NotificationRules, sender: str) -> tuple[str, ...]:
    """The lines under the sender's name: the policy's signature, else the company's name, left out
    when the sender's name already is the company's."""
    lines = tuple(line.rstrip() for line in rules.signature.strip("\n").splitlines())
    return lines or (() if sender == rules.company_name else (rules.company_name,))


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
    departure: str,
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
            key = idempotency_key(departure, recipient.contact_point_id, step.name)
            planned.append(PlannedMessage(
                idempotency_key=key, message_id_header=message_id_for(key, sender),
                customer_id=recipient.customer_id, contact_id=recipient.contact_id,
                contact_point_id=recipient.contact_point_id, step=step.name, template=step.template,
                sender_email=sender, to_email=to_email, cc_emails=cc, locale=locale,
                send_after=times[step.name], successor_rep_id=successor.id if successor else None,
            ))
    return planned, rejected


def plan_correction(
    departure: str, recipient: Recipient, successor: RepProfile | None, rules: NotificationRules,
    available_locales: Collection[str], send_after: datetime,
) -> PlannedMessage:
    """The one letter that puts right a successor's name a customer was told and that is now wrong:
    from the shared mailbox (else the new successor), copying the new successor."""
    to_email = safe_address(recipient.email)
    sender = safe_address(rules.shared_mailbox or (successor.email if successor else ""))
    cc = (safe_address(successor.email),) if successor and successor.email != sender else ()
    step = correction_step(successor)
    key = idempotency_key(departure, recipient.contact_point_id, step)
    return PlannedMessage(
        idempotency_key=key, message_id_header=message_id_for(key, sender), customer_id=recipient.customer_id,
        contact_id=recipient.contact_id, contact_point_id=recipient.contact_point_id, step=step,
        template="correction", sender_email=sender, to_email=to_email, cc_emails=cc,
        locale=locale_for(recipient, rules, available_locales), send_after=send_after,
        successor_rep_id=successor.id if successor else None)

"""The letters of an open handover: rendered into the outbox once per departure, contact point and step.

Letters belong to the departure (the rep and their tenure), not to one plan of it. Planning again
adds what is missing; a letter an earlier, cancelled plan of the same departure left unsent is taken
over and rendered anew; a letter that went out (or failed, or waits for a human) is never planned
again. When a customer's successor changes, the customer's unsent letters are rendered for the new
successor, and a contact who was already told the old name gets one correction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select, update

from config.policy import Policy
from daemon.outbox.letters import NotificationTemplates, RenderedMessage
from policies.notification_plan import (
    LetterNames,
    PlannedMessage,
    Rejected,
    departure_key,
    letter_context,
    plan_correction,
    plan_messages,
)
from registry.audit import audit
from registry.departure_facts import contact_names, mailable_recipients
from registry.departure_values import Recipient, RepProfile
from registry.handover import AWAITING_APPROVAL, OPEN, handover_items, handover_row, insert_notifications
from registry.models import Handover, HandoverStatus, Notification, NotificationState, Rep

_NOTE = Notification.__table__
REPLANNABLE = or_(_NOTE.c.state == NotificationState.PENDING, and_(_NOTE.c.state == NotificationState.HELD, or_(
    _NOTE.c.held_reason == AWAITING_APPROVAL, _NOTE.c.held_reason.startswith("cancelled:"))))
"""A letter nobody handed to a transport, held if at all only for approval or by a cancelled plan
(never for a human's decision on a send left in doubt): the only kind ever rendered anew, moved or withdrawn."""


@dataclass
class LetterPlan:
    """What one planning round did to a handover's letters."""

    added: int = 0
    taken_over: int = 0
    rerendered: int = 0
    withdrawn: int = 0
    corrections: int = 0
    already_sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class _Earlier:
    id: int
    handover_id: int
    state: str
    held_reason: str
    contact_id: int
    step: str
    successor_rep_id: int | None

    @property
    def replannable(self) -> bool:
        """In Python what REPLANNABLE says in SQL."""
        return self.state == NotificationState.PENDING or (self.state == NotificationState.HELD and (
            self.held_reason == AWAITING_APPROVAL or self.held_reason.startswith("cancelled:")))


def plan_letters(db: Connection, policy: Policy, handover_id: int, actor: str, now: datetime,
                 changed: Collection[int] = ()) -> LetterPlan:
    """Bring an open handover's letters up to date; `changed` are customers whose successor changed."""
    handover = handover_row(db, handover_id)
    if handover.status not in OPEN:
        return LetterPlan()
    rules = policy.notifications
    templates = NotificationTemplates(rules.template_dir)
    items = {item.customer_id: item for item in handover_items(db, handover_id)}
    successors = {cid: RepProfile(i.successor_rep_id, i.successor_email, i.successor_name)
                  if i.successor_rep_id else None for cid, i in items.items()}
    recipients = mailable_recipients(db, handover.rep_id, list(items),
                                     handover.created_at - timedelta(days=rules.contact_window_days))
    departure = departure_key(handover.rep_id, handover.tenure)
    planned, rejected = plan_messages(
        departure, handover.effective_at, handover.created_at, policy.ownership.grace_period_hours,
        recipients, successors, rules, templates.locales(s.template for s in rules.steps))
    earlier = _departure_letters(db, handover.rep_id, handover.tenure)
    outcome = LetterPlan(rejected=rejected)
    corrections = _corrections(recipients, successors, set(changed), earlier.values(), departure, policy,
                               templates, now)
    fresh, redo = _sort_out(planned + corrections, earlier, handover_id, set(changed), outcome)
    renderer = _Renderer(db, policy, templates, handover, items, successors)
    outcome.added = insert_notifications(db, handover_id, renderer.rows(fresh))
    for row_id, row in zip((row_id for row_id, _ in redo), renderer.rows(m for _, m in redo), strict=True):
        db.execute(update(_NOTE).where(_NOTE.c.id == row_id, REPLANNABLE).values(
            {k: v for k, v in row.items() if k not in ("idempotency_key", "message_id_header", "attempts")}))
    outcome.corrections = sum(1 for m in fresh if m.template == "correction")
    outcome.withdrawn = _withdraw_stale(db, handover_id, set(changed),
                                        {m.idempotency_key for m in planned + corrections})
    if outcome.added or redo or outcome.withdrawn or rejected:
        audit(db, actor, "notifications_planned", "handover", handover_id, {
            "added": outcome.added, "taken_over": outcome.taken_over, "rerendered": outcome.rerendered,
            "withdrawn": outcome.withdrawn, "corrections": outcome.corrections,
            "already_sent": outcome.already_sent,
            "rejected": [{"contact_id": r.contact_id, "reason": r.reason} for r in rejected]})
    return outcome


def _departure_letters(db: Connection, rep_id: int, tenure: int) -> dict[str, _Earlier]:
    """Every letter any plan of this departure holds, by idempotency key."""
    rows = db.execute(
        select(_NOTE.c.idempotency_key, _NOTE.c.id, _NOTE.c.handover_id, _NOTE.c.state, _NOTE.c.held_reason,
               _NOTE.c.contact_id, _NOTE.c.step, _NOTE.c.successor_rep_id)
        .join(Handover, Handover.id == _NOTE.c.handover_id)
        .where(Handover.rep_id == rep_id, Handover.tenure == tenure).order_by(_NOTE.c.id))
    return {row[0]: _Earlier(*row[1:]) for row in rows}


def _sort_out(planned: list[PlannedMessage], earlier: Mapping[str, _Earlier], handover_id: int, changed: set[int],
              outcome: LetterPlan) -> tuple[list[PlannedMessage], list[tuple[int, PlannedMessage]]]:
    """New letters to insert, and existing unsent rows to render anew: taken over from another plan
    of the departure, or of a customer whose successor changed. A step that reached a contact at
    any of their addresses is not planned again."""
    reached = {(e.contact_id, e.step) for e in earlier.values() if not e.replannable}
    fresh: list[PlannedMessage] = []
    redo: list[tuple[int, PlannedMessage]] = []
    for message in planned:
        found = earlier.get(message.idempotency_key)
        if found is None:
            if (message.contact_id, message.step) in reached:
                outcome.already_sent += 1
            else:
                fresh.append(message)
        elif not found.replannable:
            outcome.already_sent += found.handover_id != handover_id
        elif found.handover_id != handover_id:
            outcome.taken_over += 1
            redo.append((found.id, message))
        elif message.customer_id in changed:
            outcome.rerendered += 1
            redo.append((found.id, message))
    return fresh, redo


def _corrections(recipients: Iterable[Recipient], successors: Mapping[int, RepProfile | None], changed: set[int],
                 earlier: Iterable[_Earlier], departure: str, policy: Policy, templates: NotificationTemplates,
                 now: datetime) -> list[PlannedMessage]:
    """One correction per contact of a changed customer whose last letter sent named another successor
    (or the public pool)."""
    rules = policy.notifications
    told = {e.contact_id: e.successor_rep_id for e in earlier if e.state == NotificationState.SENT}
    letters = []
    for recipient in recipients:
        if recipient.customer_id not in changed or recipient.contact_id not in told:
            continue
        successor = successors.get(recipient.customer_id)
        if told[recipient.contact_id] == (successor.id if successor else None):
            continue
        if successor is None and not rules.shared_mailbox:
            continue
        letters.append(plan_correction(departure, recipient, successor, rules,
                                       templates.locales(["correction"]), now))
    return letters


def _withdraw_stale(db: Connection, handover_id: int, changed: set[int], wanted: set[str]) -> int:
    """Unsent letters of changed customers that the new plan no longer has are withdrawn: an
    introduction from a successor who is now the public pool, a correction naming a successor who
    changed again before it went out."""
    if not changed:
        return 0
    return db.execute(delete(_NOTE).where(
        _NOTE.c.handover_id == handover_id, _NOTE.c.customer_id.in_(sorted(changed)), REPLANNABLE,
        _NOTE.c.idempotency_key.not_in(sorted(wanted)))).rowcount


class _Renderer:
    """Outbox rows of planned letters, rendered for the handover's current state."""

    def __init__(self, db: Connection, policy: Policy, templates: NotificationTemplates, handover: Any,
                 items: Mapping[int, Any], successors: Mapping[int, RepProfile | None]) -> None:
        self.db, self.rules, self.templates = db, policy.notifications, templates
        self.handover, self.items, self.successors = handover, items, successors
        self.departing = db.execute(select(Rep.name, Rep.email).where(Rep.id == handover.rep_id)).one()
        approved = handover.status != HandoverStatus.PLANNED
        self.state, self.held_reason = ((NotificationState.PENDING, "") if approved
                                        else (NotificationState.HELD, AWAITING_APPROVAL))

    def rows(self, messages: Iterable[PlannedMessage]) -> list[dict[str, object]]:
        messages = list(messages)
        names = contact_names(self.db, (m.contact_id for m in messages))
        return [self._row(m, names.get(m.contact_id, "")) for m in messages]

    def _row(self, message: PlannedMessage, contact_name: str) -> dict[str, object]:
        letter = LetterNames(contact_name, letter_name(self.items[message.customer_id]),
                             self.departing.name, self.departing.email)
        successor = self.successors[message.customer_id]
        context = letter_context(message, letter, successor, self.rules, self.handover.effective_at)
        rendered = self.templates.render(message.template, message.locale, context)
        return _outbox_row(self.handover.id, message, self.state, self.held_reason, rendered, context["sender_name"])


def letter_name(item: Any) -> str:
    """How a letter names the customer: by a name an address book or CRM gave it, never by its key
    (a domain, an address or an org: key); empty when there is none, and the letter says "you"."""
    named = item.customer_kind == "organisation" and item.customer_name != item.customer_key
    return item.customer_name if named else ""


def _outbox_row(handover_id: int, message: PlannedMessage, state: NotificationState, held_reason: str,
                rendered: RenderedMessage, sender_name: str) -> dict[str, object]:
    return {
        "idempotency_key": message.idempotency_key, "message_id_header": message.message_id_header,
        "handover_id": handover_id, "customer_id": message.customer_id, "contact_id": message.contact_id,
        "contact_point_id": message.contact_point_id, "step": message.step, "state": state,
        "successor_rep_id": message.successor_rep_id,
        "sender_email": message.sender_email, "sender_name": sender_name, "to_email": message.to_email,
        "cc_emails": list(message.cc_emails),
        "locale": message.locale, "subject": rendered.subject, "body_text": rendered.body_text,
        "body_html": rendered.body_html, "send_after": message.send_after, "attempts": 0, "last_error": "",
        "held_reason": held_reason, "lease_owner": "",
    }

"""The outbox dispatcher: every planned notification reaches its recipient once.

Each row goes pending -> sending (committed, attempts + 1, leased to this process) -> handed to the
transport -> sent (committed). A row found in `sending` whose process is gone was interrupted
between those two commits: it is looked up in the sending mailbox before anything else happens
to it, and held for a human when the transport cannot tell (or resent, if the policy says so).
Claims are compare-and-swap updates, so several processes on one PostgreSQL share the work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, func, or_, select, tuple_

from config.policy import DispatchRules
from daemon.leases import lease_alive, lease_owner
from daemon.outbox.compose import Letter, UnsafeMessage, compose
from daemon.outbox.pacing import WINDOW, RateLimits, in_quiet_hours
from daemon.outbox.transports.base import Transport, TransportError
from registry.audit import audit
from registry.models import (
    Contact,
    ContactPoint,
    Customer,
    Handover,
    HandoverStatus,
    Notification,
    NotificationState,
    as_utc,
    utcnow,
)

log = logging.getLogger("custody.outbox")
PAGE = 500
outbox = Notification.__table__
Clock = Callable[[], datetime]


@dataclass
class RunReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    refused: int = 0
    held: int = 0
    in_doubt: int = 0
    found_sent: int = 0
    requeued: int = 0
    quiet_hours: int = 0
    rate_limited: int = 0
    capped: bool = False
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Dispatcher:
    def __init__(self, engine: Engine, rules: DispatchRules, transport: Transport,
                 clock: Clock = utcnow, owner: str | None = None) -> None:
        self.engine = engine
        self.rules = rules
        self.transport = transport
        self.clock = clock
        self.owner = owner or lease_owner()
        self.actor = f"outbox:{self.owner}"

    def run(self, limit: int | None = None) -> RunReport:
        """Resolve sends left in doubt, then send what is due, at most `limit` (and the policy's cap)."""
        report = RunReport()
        try:
            self.resolve_in_doubt(report)
            if not report.error:
                self.send_due(report, min(limit or self.rules.max_per_run, self.rules.max_per_run))
        finally:
            self.transport.close()
        return report

    def resolve_in_doubt(self, report: RunReport) -> None:
        with self.engine.connect() as db:
            rows = db.execute(select(outbox.c.id, outbox.c.message_id_header, outbox.c.sender_email, outbox.c.lease_owner,
                                     outbox.c.lease_until).where(outbox.c.state == NotificationState.SENDING)).all()
        now = self.clock()
        for row in rows:
            if lease_alive(row.lease_owner) and row.lease_until is not None and as_utc(row.lease_until) > now:
                continue
            if not self._take_over(row.id, row.lease_owner):
                continue
            report.in_doubt += 1
            try:
                found = self.transport.find_sent(row.message_id_header, row.sender_email)
            except TransportError as error:
                self._release(row.id)
                report.error = f"cannot look up sends left in doubt: {error}"
                return
            self._settle_in_doubt(row.id, found, report)

    def send_due(self, report: RunReport, limit: int) -> None:
        limits = RateLimits(self.rules, self._sent_since(self.clock() - WINDOW))
        attempts = 0
        for row in self._due(self.clock()):
            now = self.clock()
            if attempts >= limit:
                report.capped = True
                return
            if row.bounced_at is not None:
                self._hold(row.id, f"{row.to_email} bounced: {row.bounce_reason}"[:512], report)
                continue
            if in_quiet_hours(self.rules.quiet_hours, row.contact_zone or row.customer_zone, now):
                report.quiet_hours += 1
                continue
            if limits.blocked(row.sender_email, row.to_email):
                report.rate_limited += 1
                continue
            try:
                message = compose(letter_for(row), now)
            except UnsafeMessage as error:
                self._refuse(row.id, str(error), report)
                continue
            if not self._claim(row.id, now):
                continue
            attempts += 1
            try:
                self.transport.send(message, already=row.delivered_to)
            except TransportError as error:
                self._after_failure(row, error, report)
                if error.unreachable:
                    report.error = str(error)
                    return
                continue
            self._mark_sent(row.id, {})
            limits.record(row.sender_email, row.to_email)
            report.sent += 1

    def preview(self, limit: int) -> int:
        """Hand every pending message to the transport (a file transport, for review) and change nothing."""
        written = 0
        now = self.clock()
        for row in self._pending(now, due_only=False):
            if written >= limit:
                break
            try:
                self.transport.send(compose(letter_for(row), now))
            except UnsafeMessage as error:
                log.warning("notification %s would be refused: %s", row.id, error)
                continue
            written += 1
        with self.engine.begin() as db:
            audit(db, self.actor, "outbox.dry_run", "notification", "", {"written": written})
        return written

    def _due(self, now: datetime) -> Iterator[Row[Any]]:
        return self._pending(now, due_only=True)

    def _pending(self, now: datetime, due_only: bool) -> Iterator[Row[Any]]:
        """Pending rows of handovers cleared to send, one page at a time, in the order they are due: a
        dispatcher that was down sends a customer's letters in their planned order when it comes back."""
        handover = Handover.__table__
        query = (
            select(outbox, ContactPoint.bounced_at, ContactPoint.bounce_reason,
                   Contact.timezone.label("contact_zone"), Customer.timezone.label("customer_zone"))
            .join(handover, handover.c.id == outbox.c.handover_id)
            .join(ContactPoint.__table__, ContactPoint.id == outbox.c.contact_point_id)
            .join(Contact.__table__, Contact.id == outbox.c.contact_id)
            .join(Customer.__table__, Customer.id == outbox.c.customer_id)
            .where(outbox.c.state == NotificationState.PENDING, _cleared_to_send(handover))
            .order_by(outbox.c.send_after, outbox.c.id).limit(PAGE)
        )
        if due_only:
            query = query.where(outbox.c.send_after <= now)
        after = query
        while True:
            with self.engine.connect() as db:
                page = db.execute(after).all()
            yield from page
            if len(page) < PAGE:
                return
            last = page[-1]
            after = query.where(tuple_(outbox.c.send_after, outbox.c.id) > tuple_(last.send_after, last.id))

    def _sent_since(self, since: datetime) -> list[tuple[str, str]]:
        with self.engine.connect() as db:
            return [(r.sender_email, r.to_email) for r in db.execute(
                select(outbox.c.sender_email, outbox.c.to_email)
                .where(outbox.c.state == NotificationState.SENT, outbox.c.sent_at > since))]

    def _claim(self, notification_id: int, now: datetime) -> bool:
        """Pending -> sending, committed before the transport sees the message."""
        with self.engine.begin() as db:
            claimed = db.execute(
                outbox.update().where(outbox.c.id == notification_id, outbox.c.state == NotificationState.PENDING)
                .values(state=NotificationState.SENDING, attempts=outbox.c.attempts + 1, lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=self.rules.lease_seconds))
            ).rowcount
            if claimed:
                self._audit(db, "notification.sending", notification_id, {})
        return bool(claimed)

    def _mark_sent(self, notification_id: int, detail: dict[str, Any]) -> None:
        if not self._change(notification_id, NotificationState.SENDING, "notification.sent", detail,
                            state=NotificationState.SENT, sent_at=self.clock(), last_error="", held_reason=""):
            log.warning("notification %s was sent after its lease ran out; another process settles it", notification_id)

    def _after_failure(self, row: Row[Any], error: TransportError, report: RunReport) -> None:
        """A failed send's next state; recipients it reached anyway are kept so a retry skips them."""
        reached = {"delivered_to": sorted({*row.delivered_to, *error.delivered})} if error.delivered else {}
        detail: dict[str, Any] = {"error": str(error), **reached}
        if error.in_doubt:
            report.in_doubt += 1
            self._change(row.id, NotificationState.SENDING, "notification.in_doubt", detail,
                         lease_until=self.clock(), **reached)
        elif error.unreachable:
            self._change(row.id, NotificationState.SENDING, "notification.not_attempted", detail,
                         state=NotificationState.PENDING, attempts=outbox.c.attempts - 1,
                         last_error=str(error)[:2000], **reached)
        elif error.permanent or row.attempts + 1 >= self.rules.max_attempts:
            report.failed += 1
            verdict = "permanent" if error.permanent else f"gave up after {row.attempts + 1} attempts"
            self._change(row.id, NotificationState.SENDING, "notification.failed", {**detail, "verdict": verdict},
                         state=NotificationState.FAILED, last_error=f"{verdict}: {error}"[:2000], **reached)
        else:
            report.retrying += 1
            retry_at = self.clock() + self._backoff(row.attempts + 1)
            self._change(row.id, NotificationState.SENDING, "notification.retry",
                         {**detail, "retry_at": retry_at.isoformat()}, state=NotificationState.PENDING,
                         send_after=retry_at, last_error=str(error)[:2000], **reached)

    def _backoff(self, attempts: int) -> timedelta:
        seconds = self.rules.retry_backoff_seconds * 2 ** (attempts - 1)
        return timedelta(seconds=min(seconds, self.rules.retry_backoff_max_seconds))

    def _take_over(self, notification_id: int, observed_owner: str) -> bool:
        with self.engine.begin() as db:
            return bool(db.execute(
                outbox.update().where(outbox.c.id == notification_id, outbox.c.state == NotificationState.SENDING,
                                      outbox.c.lease_owner == observed_owner)
                .values(lease_owner=self.owner,
                        lease_until=self.clock() + timedelta(seconds=self.rules.lease_seconds))
            ).rowcount)

    def _release(self, notification_id: int) -> None:
        self._change(notification_id, NotificationState.SENDING, "", {}, lease_until=self.clock())

    def _settle_in_doubt(self, notification_id: int, found: bool | None, report: RunReport) -> None:
        if found:
            report.found_sent += 1
            self._mark_sent(notification_id, {"resolved": "found in the sending mailbox"})
        elif found is False or self.rules.in_doubt == "resend":
            report.requeued += 1
            reason = "not in the sending mailbox" if found is False else "policy resends sends left in doubt"
            self._change(notification_id, NotificationState.SENDING, "notification.requeued", {"reason": reason},
                         state=NotificationState.PENDING)
        else:
            report.held += 1
            self._change(notification_id, NotificationState.SENDING, "notification.held", {},
                         state=NotificationState.HELD, held_reason=(
                "interrupted while being sent and the transport cannot tell whether it went out; "
                "check the recipient or the sending mailbox, then `custody outbox release ID --went-out` or --resend"))

    def _hold(self, notification_id: int, reason: str, report: RunReport) -> None:
        if self._change(notification_id, NotificationState.PENDING, "notification.held", {"reason": reason},
                        state=NotificationState.HELD, held_reason=reason):
            report.held += 1

    def _refuse(self, notification_id: int, reason: str, report: RunReport) -> None:
        if self._change(notification_id, NotificationState.PENDING, "notification.failed", {"refused": reason},
                        state=NotificationState.FAILED, last_error=f"refused: {reason}"[:2000]):
            report.refused += 1

    def _change(self, notification_id: int, from_state: NotificationState, action: str, detail: dict[str, Any],
                **values: Any) -> bool:
        """One guarded state change and its audit event in one transaction; False when another got there first."""
        guard = [outbox.c.id == notification_id, outbox.c.state == from_state]
        if from_state == NotificationState.SENDING:
            guard.append(outbox.c.lease_owner == self.owner)
            if values.get("state"):
                values.update(lease_owner="", lease_until=None)
        with self.engine.begin() as db:
            changed = db.execute(outbox.update().where(*guard).values(**values)).rowcount
            if changed and action:
                self._audit(db, action, notification_id, detail)
        return bool(changed)

    def _audit(self, db: Connection, action: str, notification_id: int, detail: dict[str, Any]) -> None:
        audit(db, self.actor, action, "notification", notification_id, detail)


def _cleared_to_send(handover: Any) -> Any:
    """An approved or notifying handover, or a planned one that needs no approval."""
    return or_(handover.c.status.in_((HandoverStatus.APPROVED, HandoverStatus.NOTIFYING)),
               and_(handover.c.status == HandoverStatus.PLANNED, handover.c.requires_approval.is_(False)))


def letter_for(row: Row[Any]) -> Letter:
    return Letter(message_id=row.message_id_header, sender=row.sender_email, to=row.to_email,
                  cc=tuple(row.cc_emails or ()), subject=row.subject, text=row.body_text, html=row.body_html,
                  sender_name=row.sender_name)



@dataclass(frozen=True)
class Attention:
    """A notification a human should look at: held (with the reason) or failed (with the last error)."""

    notification_id: int
    handover_id: int
    state: str
    message_id: str
    to_email: str
    reason: str


@dataclass(frozen=True)
class OutboxSummary:
    states: dict[str, int]
    attention: list[Attention]


def outbox_summary(engine: Engine) -> OutboxSummary:
    with engine.connect() as db:
        states = {state: n for state, n in db.execute(
            select(outbox.c.state, func.count()).group_by(outbox.c.state))}
        rows = db.execute(
            select(outbox.c.id, outbox.c.handover_id, outbox.c.state, outbox.c.message_id_header,
                   outbox.c.to_email, outbox.c.held_reason, outbox.c.last_error)
            .where(outbox.c.state.in_((NotificationState.HELD, NotificationState.FAILED))).order_by(outbox.c.id)).all()
    return OutboxSummary(states, [Attention(r.id, r.handover_id, r.state, r.message_id_header, r.to_email,
                                            r.held_reason if r.state == NotificationState.HELD else r.last_error)
                                  for r in rows])


def release_held(engine: Engine, notification_id: int, went_out: bool, actor: str) -> bool:
    """A human's verdict on a held message: it did go out (mark sent), or send it (back to pending)."""
    values: dict[str, Any] = ({"state": NotificationState.SENT, "sent_at": utcnow()} if went_out
                              else {"state": NotificationState.PENDING})
    with engine.begin() as db:
        changed = db.execute(outbox.update()
                             .where(outbox.c.id == notification_id, outbox.c.state == NotificationState.HELD)
                             .values(held_reason="", **values)).rowcount
        if changed:
            audit(db, actor, "notification.sent" if went_out else "notification.released", "notification",
                  notification_id, {"decided_by": actor, "went_out": went_out})
    return bool(changed)

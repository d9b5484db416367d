"""Delivery status notifications (RFC 3464) in the sending mailbox mark a contact point bounced.

A report is matched to the notification by the original Message-ID it quotes, and to the address
by its Original-Recipient (else Final-Recipient); only the notification's own To address is
marked, so a bounce from a copied colleague never marks the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import default

from sqlalchemy import Engine, select

from daemon.outbox.transports.mailbox import SendingMailbox
from registry.audit import audit
from registry.models import ContactPoint, Notification, utcnow

outbox = Notification.__table__
points = ContactPoint.__table__


@dataclass(frozen=True)
class Bounce:
    recipient: str
    status: str
    reason: str
    original_message_id: str


@dataclass(frozen=True)
class BouncedNotification:
    notification_id: int
    step: str
    to_email: str
    bounced_at: datetime
    reason: str


def parse_report(raw: bytes) -> list[Bounce]:
    """The failed recipients of a delivery status notification; [] for anything else."""
    report = message_from_bytes(raw, policy=default)
    if report.get_content_type() != "multipart/report" or report.get_param("report-type") != "delivery-status":
        return []
    parts = list(report.iter_parts())  # type: ignore[attr-defined]
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    if status is None:
        return []
    original_id = _original_message_id(parts)
    bounces = []
    for fields in status.get_payload()[1:]:
        if str(fields.get("Action", "")).strip().lower() != "failed":
            continue
        recipient = _address(fields.get("Original-Recipient") or fields.get("Final-Recipient") or "")
        if recipient:
            reason = " ".join(str(fields.get("Diagnostic-Code", "")).split()) or "delivery failed"
            bounces.append(Bounce(recipient, str(fields.get("Status", "")).strip(), reason, original_id))
    return bounces


def record_bounces(engine: Engine, bounces: list[Bounce], actor: str, now: datetime | None = None) -> int:
    """Mark the notification's recipient bounced once; returns how many contact points were newly marked."""
    marked = 0
    with engine.begin() as db:
        for bounce in bounces:
            row = db.execute(select(outbox.c.id, outbox.c.contact_point_id, outbox.c.to_email)
                             .where(outbox.c.message_id_header == bounce.original_message_id)).first()
            if row is None or row.to_email.lower() != bounce.recipient:
                continue
            reason = f"{bounce.status} {bounce.reason}".strip()[:512]
            changed = db.execute(points.update().where(points.c.id == row.contact_point_id,
                                                       points.c.bounced_at.is_(None))
                                 .values(bounced_at=now or utcnow(), bounce_reason=reason)).rowcount
            if changed:
                marked += 1
                audit(db, actor, "contact_point.bounced", "contact_point", row.contact_point_id,
                      {"notification": row.id, "message_id": bounce.original_message_id, "reason": reason})
    return marked


def collect_bounces(engine: Engine, mailbox: SendingMailbox, actor: str) -> int:
    """Read new reports from the sending mailbox, record them, and remember they were read."""
    reports = mailbox.unread_reports()
    marked = record_bounces(engine, [b for raw in reports.values() for b in parse_report(raw)], actor)
    mailbox.mark_reports_read(list(reports))
    return marked


def handover_bounces(engine: Engine, handover_id: int) -> list[BouncedNotification]:
    """The handover's notifications whose recipient address has bounced, for the handover report."""
    query = (select(outbox.c.id, outbox.c.step, outbox.c.to_email, points.c.bounced_at, points.c.bounce_reason)
             .join(points, points.c.id == outbox.c.contact_point_id)
             .where(outbox.c.handover_id == handover_id, points.c.bounced_at.is_not(None))
             .order_by(outbox.c.id))
    with engine.connect() as db:
        return [BouncedNotification(*row) for row in db.execute(query)]


def _original_message_id(parts: list[Message]) -> str:
    for part in parts:
        if part.get_content_type() == "message/rfc822":
            return str(part.get_payload()[0].get("Message-ID", "")).strip()
        if part.get_content_type() == "text/rfc822-headers":
            return str(HeaderParser(policy=default).parsestr(part.get_content()).get("Message-ID", "")).strip()
    return ""


def _address(field: object) -> str:
    """'rfc822; Someone@Example.com' -> 'someone@example.com'."""
    kind, _, address = str(field).partition(";")
    return address.strip().strip("<>").lower() if kind.strip().lower() == "rfc822" else ""

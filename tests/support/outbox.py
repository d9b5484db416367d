"""Planned notifications written straight into a registry, as the handover planner would leave them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage

from sqlalchemy import Engine, select

from daemon.outbox.compose import Letter, compose
from registry.models import Contact, ContactPoint, Customer, Handover, Notification, Rep

PLANNED_AT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SENDER = "sam.successor@company.example"
COPY = "sam.successor@company.example"
CUSTOMER = "ana@acme.example"


@dataclass(frozen=True)
class Planned:
    id: int
    message_id: str
    to_email: str
    subject: str


def letter(message_id: str = "<handover-1-0@company.example>", sender: str = "hello@company.example") -> EmailMessage:
    """A letter as the dispatcher composes it, plus one custom x- header."""
    message = compose(Letter(message_id=message_id, sender=sender, to=CUSTOMER, cc=(COPY,),
                             subject="Your new contact at Company", text="Dear Ana,\nSam now looks after your account.\n",
                             html="<p>Dear Ana,</p><p>Sam now looks after your account.</p>", sender_name="Company"),
                      PLANNED_AT)
    message["X-Custody-Notification"] = "1"
    return message


def plan_notifications(
    engine: Engine,
    count: int,
    *,
    domains: tuple[str, ...] = ("acme.example",),
    sender: str = "hello@company.example",
    cc: tuple[str, ...] = (COPY,),
    contact_timezone: str = "",
    subject: str = "Your new contact at Company",
    send_after: datetime = PLANNED_AT,
    handover_status: str = "approved",
) -> list[Planned]:
    """`count` notifications in one handover, one contact each, spread over the customer `domains`."""
    run = uuid.uuid4().hex[:8]
    with engine.begin() as db:
        rep_id = db.execute(Rep.__table__.insert().values(
            email=f"dana.{run}@company.example", name="Dana Departing", status="deactivated")).inserted_primary_key[0]
        handover_id = db.execute(Handover.__table__.insert().values(
            rep_id=rep_id, status=handover_status, effective_at=send_after, requires_approval=True,
            approved_by="cli:test", approved_at=send_after)).inserted_primary_key[0]
        customers = {domain: _customer(db, domain) for domain in domains}
        contact_rows, point_rows = [], []
        for i in range(count):
            domain = domains[i % len(domains)]
            contact_rows.append({"customer_id": customers[domain], "name": f"Contact {i} {run}", "locale": "en",
                                 "timezone": contact_timezone})
        db.execute(Contact.__table__.insert(), contact_rows)
        names = [row["name"] for row in contact_rows]
        by_name = dict(db.execute(select(Contact.name, Contact.id).where(Contact.name.in_(names))).all())  # type: ignore[attr-defined]
        contact_ids = [by_name[name] for name in names]
        addresses = [f"c{i}.{run}@{domains[i % len(domains)]}" for i in range(count)]
        point_rows = [{"contact_id": contact_ids[i], "kind": "email", "value": addresses[i]} for i in range(count)]
        db.execute(ContactPoint.__table__.insert(), point_rows)
        point_ids = dict(db.execute(select(ContactPoint.value, ContactPoint.id)
                                    .where(ContactPoint.value.in_(addresses))).all())  # type: ignore[attr-defined]
        notifications = [{
            "idempotency_key": f"{handover_id}:{contact_ids[i]}:introduction",
            "message_id_header": f"<handover-{handover_id}-{i}.{run}@company.example>",
            "handover_id": handover_id, "customer_id": customers[domains[i % len(domains)]],
            "contact_id": contact_ids[i], "contact_point_id": point_ids[addresses[i]], "step": "introduction",
            "state": "pending", "sender_email": sender, "to_email": addresses[i], "cc_emails": list(cc),
            "locale": "en", "subject": subject,
            "body_text": f"Dear Contact {i},\nSam now looks after your account.\n",
            "body_html": f"<p>Dear Contact {i},</p><p>Sam now looks after your account.</p>",
            "send_after": send_after, "attempts": 0, "last_error": "", "held_reason": "", "lease_owner": "",
        } for i in range(count)]
        db.execute(Notification.__table__.insert(), notifications)
        rows = db.execute(select(Notification.id, Notification.message_id_header, Notification.to_email,
                                 Notification.subject)
                          .where(Notification.handover_id == handover_id).order_by(Notification.id)).all()
    return [Planned(*row) for row in rows]


def _customer(db, domain: str) -> int:  # type: ignore[no-untyped-def]
    found = db.execute(select(Customer.id).where(Customer.key == domain)).scalar()
    if found is not None:
        return int(found)
    return int(db.execute(Customer.__table__.insert().values(key=domain, name=domain)).inserted_primary_key[0])


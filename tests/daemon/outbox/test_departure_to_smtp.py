"""End to end on the demo company: a rep departs, the plan is approved, the outbox sends every
change-of-contact message through a real SMTP server, once per contact and step."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import Engine, select

from config.policy import DispatchRules, load_policy
from config.sections import SmtpConfig
from config.settings import load_settings
from daemon.jobs.departure import depart, settle_due_handovers
from daemon.outbox.dispatch import Dispatcher
from daemon.outbox.transports.smtp import SmtpTransport
from daemon.sync.engine import sync_source
from demo.company import DemoCompany
from registry.handover import approve_handover, handover_report
from registry.models import Customer, HandoverItem, Interaction, Notification, Rep
from tests.conftest import DEMO_TODAY
from tests.servers.smtp import SmtpServer

TODAY = DEMO_TODAY
NOW = datetime.combine(TODAY, time(9), timezone.utc)
EFFECTIVE = NOW + timedelta(days=7)
DEPARTING = "wang.lei@northwind-demo.example"


def test_every_contact_hears_once_per_step_from_the_right_sender(
    engine: Engine, smtp_server: SmtpServer, demo_company: DemoCompany,
) -> None:
    company = demo_company  # shared, and left as it is: syncing only reads a company's mail and address books
    settings = load_settings(company.config_path)
    policy = load_policy(settings.policy_file)
    assert all(sync_source(engine, settings, policy, source).ok for source in settings.sources)

    outcome = depart(engine, policy, DEPARTING, effective=EFFECTIVE, now=NOW)
    with engine.begin() as db:
        approve_handover(db, outcome.handover_id, "cli:compliance")
    clock = lambda: EFFECTIVE + timedelta(days=3)  # noqa: E731  (every step is due)
    rules = DispatchRules(per_mailbox_per_hour=0, per_domain_per_hour=0, quiet_hours=None, max_per_run=50)
    transport = lambda: SmtpTransport(SmtpConfig(host="127.0.0.1", port=smtp_server.port, security="plain"))  # noqa: E731
    while Dispatcher(engine, rules, transport(), clock=clock).run().sent:
        pass

    with engine.connect() as db:
        rep_id = db.execute(select(Rep.id).where(Rep.email == DEPARTING)).scalar_one()
        worked = set(db.execute(select(Interaction.customer_id).where(Interaction.rep_id == rep_id)).scalars())
        assigned = dict(db.execute(select(HandoverItem.customer_id, HandoverItem.strategy)
                                   .where(HandoverItem.handover_id == outcome.handover_id)).all())
        rows = {r.message_id_header: r for r in db.execute(select(Notification.__table__)
                                                           .where(Notification.handover_id == outcome.handover_id))}
    assert worked <= set(assigned) and all(assigned.values())
    received = smtp_server.received
    assert len(received) == len(rows) == outcome.planned > 0
    assert Counter(r.message_id for r in received) == Counter(list(rows))
    assert len({(row.contact_id, row.step) for row in rows.values()}) == len(rows)
    for mail in received:
        row = rows[mail.message_id]
        message = mail.message
        assert (message["To"], message["Subject"]) == (row.to_email, row.subject)
        assert [(a.display_name, a.addr_spec) for a in message["From"].addresses] == [(row.sender_name, row.sender_email)]
        assert sorted(filter(None, str(message.get("Cc", "")).split(", "))) == sorted(row.cc_emails)
        assert set(mail.rcpt_tos) == {row.to_email, *row.cc_emails}
        text = message.get_body(("plain",)).get_content()
        assert ("顺颂商祺" in text, "regards," in text) == (row.locale == "zh", row.locale == "en")
        assert text.splitlines() == row.body_text.splitlines()
    assert {row.locale for row in rows.values()} == {"en", "zh"}
    farewell = next(r for r in rows.values() if r.step == "farewell")
    assert farewell.sender_email == "customers@northwind-demo.example"

    assert settle_due_handovers(engine, now=EFFECTIVE) == [outcome.handover_id]
    with engine.connect() as db:
        report = handover_report(db, outcome.handover_id)
        owners = set(db.execute(select(Customer.owner_rep_id).where(Customer.id.in_(list(assigned)))).scalars())  # type: ignore[attr-defined]
    assert (report.status, report.by_state) == ("done", {"sent": len(rows)})
    assert rep_id not in owners

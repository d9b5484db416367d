"""Which messages a handover plans: recipients, senders, copies, timing, locale and stable identities."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from config.policy import NotificationRules, Policy
from config.sections import ConfigError
from policies.notification_plan import Recipient, idempotency_key, locale_for, message_id_for, plan_messages
from policies.ownership import RepProfile

EFFECTIVE = datetime(2026, 7, 10, tzinfo=timezone.utc)
PLANNED = datetime(2026, 7, 1, 9, 30, tzinfo=timezone.utc)
RULES = NotificationRules(shared_mailbox="customers@corp.example")
BOB = RepProfile(2, "bob@corp.example", "Bob")
JOHN = Recipient(customer_id=10, contact_id=100, contact_point_id=1000, email="john@acme.example")
LI = Recipient(customer_id=11, contact_id=101, contact_point_id=1001, email="li@globex.com.cn")


def plan(recipients: list[Recipient], successors: dict[int, RepProfile | None], rules: NotificationRules = RULES,
         planned_at: datetime = PLANNED, grace: int = 24):
    return plan_messages(7, EFFECTIVE, planned_at, grace, recipients, successors, rules, {"en", "zh"})


def test_each_contact_gets_each_step_from_the_right_sender() -> None:
    planned, rejected = plan([JOHN], {10: BOB})
    assert rejected == []
    farewell, introduction = planned
    assert (farewell.step, farewell.sender_email, farewell.to_email, farewell.cc_emails) == (
        "farewell", "customers@corp.example", "john@acme.example", ("bob@corp.example",))
    assert (introduction.step, introduction.sender_email, introduction.cc_emails) == (
        "introduction", "bob@corp.example", ())
    assert farewell.send_after == EFFECTIVE - timedelta(days=2)
    assert introduction.send_after == EFFECTIVE + timedelta(days=2)


def test_identity_is_stable_and_fixed_before_sending() -> None:
    first, _ = plan([JOHN], {10: BOB})
    again, _ = plan([JOHN], {10: BOB}, planned_at=PLANNED + timedelta(hours=5))
    assert [m.idempotency_key for m in first] == [m.idempotency_key for m in again]
    key = idempotency_key(7, 100, "farewell")
    assert first[0].idempotency_key == key != idempotency_key(8, 100, "farewell")
    assert first[0].message_id_header == f"<custody.{key}@corp.example>"
    assert message_id_for(key, "bob@bücher.example") == f"<custody.{key}@xn--bcher-kva.example>"


def test_pool_customers_hear_only_from_the_company() -> None:
    planned, _ = plan([JOHN], {10: None})
    assert [(m.step, m.sender_email, m.cc_emails) for m in planned] == [("farewell", "customers@corp.example", ())]


def test_grace_period_and_step_order_hold_for_a_late_plan() -> None:
    late = EFFECTIVE + timedelta(days=5)
    farewell, introduction = plan([JOHN], {10: BOB}, planned_at=late, grace=24)[0]
    assert farewell.send_after == late + timedelta(hours=24)
    assert introduction.send_after == farewell.send_after


def test_locale_comes_from_registry_then_domain_then_default() -> None:
    available = {"en", "zh"}
    assert locale_for(LI, RULES, available) == "zh"
    assert locale_for(JOHN, RULES, available) == "en"
    assert locale_for(Recipient(1, 1, 1, "x@acme.example", "zh-Hans"), RULES, available) == "zh"
    assert locale_for(Recipient(1, 1, 1, "x@globex.cn", "fr"), RULES, available) == "zh"
    assert locale_for(LI, RULES, {"en"}) == "en"
    rules = NotificationRules(locale_by_domain_suffix={".cn": "zh", ".edu.cn": "en"})
    assert locale_for(Recipient(1, 1, 1, "prof@tsinghua.edu.cn"), rules, available) == "en"


def test_unsafe_recipient_address_is_rejected_not_repaired() -> None:
    evil = Recipient(10, 102, 1002, "eve@acme.example\r\nBcc: all@corp.example")
    planned, rejected = plan([evil, JOHN], {10: BOB})
    assert {m.to_email for m in planned} == {"john@acme.example"}
    assert [(r.contact_id, "not allowed in a header" in r.reason) for r in rejected] == [(102, True)]


def test_shared_steps_need_a_shared_mailbox() -> None:
    with pytest.raises(ConfigError, match="shared_mailbox"):
        plan([JOHN], {10: BOB}, rules=NotificationRules())


def test_policy_file_rejects_pool_before_other_strategies_and_duplicate_steps() -> None:
    with pytest.raises(ValueError, match="must come last"):
        Policy(ownership={"strategies": ["pool", "manager"]})
    step = {"name": "farewell", "template": "farewell", "days_from_effective": -1}
    with pytest.raises(ValueError, match="step names must be unique"):
        Policy(notifications={"steps": [step, step]})

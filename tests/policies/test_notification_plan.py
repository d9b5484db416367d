"""Which messages a handover plans: recipients, senders, copies, timing, locale and stable identities."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from config.policy import NotificationRules, Policy, load_policy
from config.sections import ConfigError
from policies.notification_plan import (
    LetterNames,
    PlannedMessage,
    idempotency_key,
    letter_context,
    local_date,
    locale_for,
    message_id_for,
    plan_messages,
)
from registry.departure_values import Recipient, RepProfile

EFFECTIVE = datetime(2026, 7, 10, tzinfo=timezone.utc)
PLANNED = datetime(2026, 7, 1, 9, 30, tzinfo=timezone.utc)
RULES = NotificationRules(company_name="Corp", shared_mailbox="customers@corp.example")
BOB = RepProfile(2, "bob@corp.example", "Bob")
JOHN = Recipient(customer_id=10, contact_id=100, contact_point_id=1000, email="john@acme.example")
LI = Recipient(customer_id=11, contact_id=101, contact_point_id=1001, email="li@globex.com.cn")


def plan(recipients: list[Recipient], successors: dict[int, RepProfile | None], rules: NotificationRules = RULES,
         planned_at: datetime = PLANNED, grace: int = 24):
    return plan_messages("7.0", EFFECTIVE, planned_at, grace, recipients, successors, rules, {"en", "zh"})


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
    """Keyed by departure (rep and tenure), contact point and step: any plan of one departure gives a
    letter the same key and Message-ID; the rep's next departure, after a rehire, gives new ones."""
    first, _ = plan([JOHN], {10: BOB})
    again, _ = plan([JOHN], {10: BOB}, planned_at=PLANNED + timedelta(hours=5))
    assert [m.idempotency_key for m in first] == [m.idempotency_key for m in again]
    key = idempotency_key("7.0", 1000, "farewell")
    assert first[0].idempotency_key == key != idempotency_key("7.1", 1000, "farewell")
    assert key not in (idempotency_key("8.0", 1000, "farewell"), idempotency_key("7.0", 1001, "farewell"))
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


SHIPPED = {"en", "zh", "de", "fr", "es", "ja"}


def language(email: str, stored: str = "", rules: NotificationRules = RULES, available: set[str] = SHIPPED) -> str:
    return locale_for(Recipient(1, 1, 1, email, stored), rules, available)


def test_locale_comes_from_registry_then_domain_then_default() -> None:
    assert language("li@globex.com.cn") == "zh"
    assert language("john@acme.example") == "en"
    assert language("x@acme.example", "zh-Hans") == "zh"
    assert language("x@globex.cn", "de_AT") == "de"
    assert language("li@globex.com.cn", available={"en"}) == "en"
    rules = NotificationRules(locale_by_domain_suffix={".cn": "zh", ".edu.cn": "en"})
    assert language("prof@tsinghua.edu.cn", rules=rules) == "en"


def test_the_country_of_the_domain_gives_the_language() -> None:
    expected = {"anna@firma.de": "de", "max@firma.co.at": "de", "urs@firma.ch": "de", "marie@societe.fr": "fr",
                "luis@empresa.com.mx": "es", "sofia@empresa.es": "es", "martin@empresa.com.ar": "es",
                "taro@kaisha.co.jp": "ja", "wang@gongsi.cn": "zh", "chen@gongsi.com.tw": "zh", "lee@gongsi.hk": "zh",
                "liu@qq.com": "zh", "jan@bedrijf.be": "en", "sam@startup.co": "en", "ann@firm.com": "en"}
    assert {email: language(email) for email in expected} == expected


def test_a_stated_language_without_templates_gets_the_default_not_a_domain_guess() -> None:
    assert language("li@globex.cn", "pt-BR") == "en"
    assert language("giulia@azienda.it") == "en"
    assert language("giulia@azienda.it", available=SHIPPED | {"it"}) == "it"
    assert language("urs@firma.ch", available=SHIPPED | {"de-CH"}) == "de-CH"
    assert language("anna@firma.de", rules=NotificationRules(default_locale="en-GB")) == "de"
    assert language("ann@firm.com", rules=NotificationRules(default_locale="en-GB")) == "en"


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


def test_dates_are_written_as_each_language_writes_them() -> None:
    day, first = date(2026, 7, 10), date(2026, 3, 1)
    assert [local_date(day, locale) for locale in ("en", "de-DE", "fr", "es", "ja", "zh_CN", "it")] == [
        "10 July 2026", "10. Juli 2026", "10 juillet 2026", "10 de julio de 2026", "2026年7月10日", "2026年7月10日",
        "2026-07-10"]
    assert (local_date(first, "fr"), local_date(first, "de")) == ("1er mars 2026", "1. März 2026")


def letter(message: PlannedMessage, successor: RepProfile | None, rules: NotificationRules = RULES) -> dict[str, Any]:
    return letter_context(message, LetterNames("John", "", "", "alice@corp.example"), successor, rules, EFFECTIVE)


def test_the_letter_says_who_writes_and_whether_the_effective_date_has_passed() -> None:
    farewell, introduction = plan([JOHN], {10: BOB})[0]
    early, late = letter(farewell, BOB), letter(introduction, BOB)
    assert (early["sender_name"], early["before_effective"], early["successor_copied"]) == ("Corp", True, True)
    assert (late["sender_name"], late["before_effective"], late["successor_copied"]) == ("Bob", False, False)
    assert (early["departing_name"], early["effective_date_text"]) == ("alice@corp.example", "10 July 2026")
    named = RULES.model_copy(update={"sender_name": "Corp Customer Care"})
    assert letter(farewell, BOB, named)["sender_name"] == "Corp Customer Care"
    assert letter(introduction, RepProfile(2, "bob@corp.example", "Bob\r\nBcc: x@y"))["sender_name"] == "Bob Bcc: x@y"
    late_plan, _ = plan([JOHN], {10: BOB}, planned_at=EFFECTIVE + timedelta(days=1))
    assert letter(late_plan[0], BOB)["before_effective"] is False


def test_the_signature_goes_under_the_sender_name() -> None:
    farewell, introduction = plan([JOHN], {10: BOB})[0]
    assert letter(farewell, BOB)["signature_lines"] == ()
    assert letter(introduction, BOB)["signature_lines"] == ("Corp",)
    signed = RULES.model_copy(update={"signature": "Corp Ltd\n\n+44 20 1234 5678  \n"})
    assert letter(farewell, BOB, signed)["signature_lines"] == ("Corp Ltd", "", "+44 20 1234 5678")


def test_a_relative_template_dir_is_read_beside_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("notifications: {template_dir: letters}\n", encoding="utf-8")
    assert load_policy(tmp_path / "policy.yaml").notifications.template_dir == tmp_path / "letters"

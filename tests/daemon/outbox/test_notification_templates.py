"""The shipped change-of-contact letters in six languages: wording, tense, salutations, signature,
escaping and header safety; and the check that renders every set, shipped and a company's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from config.policy import NotificationRules
from daemon.outbox.letters import NotificationTemplates
from policies.notification_plan import LetterNames, PlannedMessage, letter_context
from registry.departure_values import RepProfile

EFFECTIVE = datetime(2026, 7, 10, tzinfo=timezone.utc)
RULES = NotificationRules(company_name="Corp", shared_mailbox="customers@corp.example")
BOB = RepProfile(2, "bob@corp.example", "Bob")
NAMES = LetterNames("John", "Acme", "Alice", "alice@corp.example")
SHIPPED = {"en", "zh", "de", "fr", "es", "ja"}


def context(locale: str, template: str = "farewell", *, before: bool = True, successor: RepProfile | None = BOB,
            names: LetterNames = NAMES, rules: NotificationRules = RULES, copied: bool = True) -> dict[str, Any]:
    """What planning hands a letter two days before or after the effective date: the farewell from the
    shared mailbox (copying the successor), the introduction from the successor."""
    own = template == "introduction" and successor is not None
    message = PlannedMessage(
        idempotency_key="k", message_id_header="<k@corp.example>", customer_id=1, contact_id=1, contact_point_id=1,
        step=template, template=template, sender_email=BOB.email if own else rules.shared_mailbox,
        to_email="john@acme.example", cc_emails=(BOB.email,) if successor and copied and not own else (),
        locale=locale, send_after=EFFECTIVE + timedelta(days=-2 if before else 2))
    return letter_context(message, names, successor, rules, EFFECTIVE)


def render(template: str, locale: str, **changes: Any):  # type: ignore[no-untyped-def]
    return NotificationTemplates().render(template, locale, context(locale, template, **changes))


def test_six_languages_ship_for_both_steps() -> None:
    assert NotificationTemplates().locales(["farewell", "introduction"]) == SHIPPED


FUTURE = {
    "en": "Bob will look after you from 10 July 2026 and can be reached at bob@corp.example.",
    "de": "Ab dem 10. Juli 2026 wird Bob Sie betreuen. Sie erreichen Bob unter bob@corp.example.",
    "fr": "À partir du 10 juillet 2026, Bob prendra le relais pour vous accompagner.",
    "es": "A partir del 10 de julio de 2026, Bob se encargará de atenderle.",
    "ja": "2026年7月10日より、後任としてBobが担当させていただきます。",
    "zh": "自2026年7月10日起，Bob将接手为您服务，联系邮箱：bob@corp.example。",
}
PAST = {
    "en": "Bob now looks after you and can be reached at bob@corp.example.",
    "de": "Seit dem 10. Juli 2026 betreut Sie Bob.",
    "fr": "Depuis le 10 juillet 2026, Bob a pris le relais pour vous accompagner.",
    "es": "Desde el 10 de julio de 2026, Bob se encarga de atenderle.",
    "ja": "2026年7月10日より、後任のBobが担当させていただいております。",
    "zh": "自2026年7月10日起，Bob已接手为您服务",
}


@pytest.mark.parametrize("locale", sorted(SHIPPED))
def test_a_farewell_before_the_effective_date_says_who_will_look_after_the_customer(locale: str) -> None:
    before, after = render("farewell", locale, before=True), render("farewell", locale, before=False)
    assert FUTURE[locale] in before.body_text and PAST[locale] not in before.body_text
    assert PAST[locale] in after.body_text and FUTURE[locale] not in after.body_text
    assert 'href="mailto:bob@corp.example"' in before.body_html


def test_english_subjects_follow_the_tense_too() -> None:
    assert render("farewell", "en").subject == "Alice is leaving Corp: Bob will be your new contact"
    assert render("farewell", "en", before=False).subject == "Bob is now your contact at Corp"
    assert render("farewell", "en", before=False, successor=None).subject == "Alice has left Corp"
    assert render("introduction", "en").subject == "Bob, your new contact at Corp"


SALUTATIONS = {
    "en": ("Dear John,", "Hello,"),
    "de": ("Guten Tag John,", "Sehr geehrte Damen und Herren,"),
    "fr": ("Bonjour John,", "Madame, Monsieur,"),
    "es": ("Buenos días, John:", "Buenos días:"),
    "ja": ("Acme\nJohn 様", "ご担当者様"),
    "zh": ("John您好：", "您好："),
}


@pytest.mark.parametrize("locale", sorted(SHIPPED))
@pytest.mark.parametrize("template", ["farewell", "introduction"])
def test_letters_open_as_a_native_business_letter_without_guessing_gender(locale: str, template: str) -> None:
    named, unnamed = SALUTATIONS[locale]
    assert render(template, locale).body_text.startswith(named)
    assert render(template, locale, names=LetterNames("", "", "Alice", "alice@corp.example")).body_text.startswith(unnamed)


def test_chinese_letters_greet_warmly_and_keep_chinese_names() -> None:
    names = LetterNames("王勇", "环球贸易", "王磊", "wang.lei@corp.example")
    letter = render("farewell", "zh", names=names, successor=RepProfile(2, "li.na@corp.example", "李娜"))
    assert letter.body_text.startswith("王勇您好：") and "尊敬的" not in letter.body_text
    assert "王磊将于2026年7月10日离开Corp" in letter.body_text and "李娜" in letter.subject


def test_the_copy_sentence_appears_only_when_the_successor_is_copied() -> None:
    assert "Bob is copied on this message" in render("farewell", "en", copied=True).body_text
    assert "copied" not in render("farewell", "en", copied=False).body_text


def test_a_pool_customer_is_sent_to_the_shared_mailbox() -> None:
    for before, phrase in ((True, "Our team will look after you from 10 July 2026"), (False, "Our team now looks after you")):
        letter = render("farewell", "en", before=before, successor=None)
        assert phrase in letter.body_text and "customers@corp.example" in letter.body_text
    chinese = render("farewell", "zh", successor=None)
    assert "customers@corp.example" in chinese.body_text and "接替" not in chinese.subject


def test_the_signature_is_printed_line_by_line_in_text_and_html() -> None:
    rules = RULES.model_copy(update={"signature": "Corp Trading Ltd\n1 Main Street <Suite 5>\n+44 20 1234 5678\n"})
    for locale in SHIPPED:
        letter = NotificationTemplates().render("farewell", locale, context(locale, rules=rules))
        assert letter.body_text.endswith("Corp\nCorp Trading Ltd\n1 Main Street <Suite 5>\n+44 20 1234 5678\n")
        assert "Corp<br>Corp Trading Ltd<br>1 Main Street &lt;Suite 5&gt;<br>+44 20 1234 5678</p>" in letter.body_html


def test_without_a_signature_the_successor_signs_with_the_company_name() -> None:
    introduction = render("introduction", "en")
    assert introduction.body_text.endswith("Best regards,\nBob\nCorp\n")
    farewell = render("farewell", "en")
    assert farewell.body_text.endswith("Kind regards,\nCorp\n")


def test_a_customer_without_a_known_name_is_addressed_as_you() -> None:
    """A customer known only by its domain or an address is not named by that in a letter."""
    unnamed = LetterNames("John", "", "Alice", "alice@corp.example")
    assert "I have taken over from Alice as your contact" in render("introduction", "en", names=unnamed, before=False).body_text
    assert "make sure you keep a direct line to us" in render("farewell", "en", names=unnamed).body_html
    assert "负责与您的业务联系" in render("introduction", "zh", names=unnamed).body_text
    assert "Uns ist wichtig, dass Sie auch weiterhin" in render("farewell", "de", names=unnamed).body_text
    assert "make sure Acme keeps a direct line" in render("farewell", "en").body_text


def test_names_cannot_inject_headers_or_markup() -> None:
    hostile = LetterNames("John", "<script>x()</script>", "Alice\r\nBcc: all@corp.example", "alice@corp.example")
    message = render("farewell", "en", names=hostile)
    assert "\r" not in message.subject and "\n" not in message.subject
    assert "Alice Bcc: all@corp.example" in message.subject
    assert "<script>" not in message.body_html and "&lt;script&gt;x()&lt;/script&gt;" in message.body_html
    assert "Alice Bcc: all@corp.example will be leaving" in message.body_text


def test_a_template_dir_overrides_only_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "farewell.en.subject.j2").write_text("Goodbye from {{ departing_name }}\r\nX-Evil: 1", encoding="utf-8")
    message = NotificationTemplates(tmp_path).render("farewell", "en", context("en"))
    assert message.subject == "Goodbye from Alice X-Evil: 1"
    assert "Alice will be leaving Corp" in message.body_text


def samples(locale: str) -> list[dict[str, Any]]:
    return [context(locale), context(locale, "introduction", before=False), context(locale, successor=None)]


def test_check_passes_every_shipped_set() -> None:
    results = NotificationTemplates().check(["farewell", "introduction"], "en", samples)
    assert {(r.template, r.locale) for r in results} >= {(t, loc) for t in ("farewell", "introduction") for loc in SHIPPED}
    assert all(r.problems == () and r.origin == "shipped" for r in results)


def test_check_names_each_broken_file_of_a_company(tmp_path: Path) -> None:
    (tmp_path / "farewell.de.txt.j2").write_text("{% if successor_name %}{{ succesor_email }}{% endif %}\n")
    (tmp_path / "farewell.en.html.j2").write_text("<p>{% for x in signature_lines %}</p>\n")
    (tmp_path / "farewell.it.subject.j2").write_text("Cambio di referente\n")
    (tmp_path / "introduction.en.txt.j2").write_text("Hello,\n\nFrom {{ effective_date_text }} I look after you.\n")
    (tmp_path / "farewell-it.txt.j2").write_text("misnamed\n")
    templates = NotificationTemplates(tmp_path)

    results = {(r.template, r.locale): r for r in templates.check(["farewell", "introduction"], "en", samples)}

    assert results[("farewell", "de")].problems == (f"{tmp_path / 'farewell.de.txt.j2'}: unknown variable succesor_email",)
    assert results[("farewell", "de")].origin == "company+shipped"
    assert str(tmp_path / "farewell.en.html.j2") + ":1:" in results[("farewell", "en")].problems[0]
    assert results[("farewell", "it")].problems == ("missing farewell.it.txt.j2, farewell.it.html.j2",)
    assert results[("introduction", "it")].origin == "nowhere"
    assert results[("farewell", "fr")].problems == ()
    assert results[("introduction", "en")].problems == (
        f'{tmp_path / "introduction.en.txt.j2"}: a line starts with "From ", which mail software rewrites to ">From "',)
    assert templates.misnamed() == [tmp_path / "farewell-it.txt.j2"]
    assert templates.locales(["farewell", "introduction"]) == SHIPPED

"""The shipped change-of-contact templates in English and Chinese, escaping and header safety."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from daemon.notification_templates import NotificationTemplates

CONTEXT = {
    "contact_name": "John", "customer_name": "Acme", "company_name": "Corp", "departing_name": "Alice",
    "departing_email": "alice@corp.example", "successor_name": "Bob", "successor_email": "bob@corp.example",
    "shared_mailbox": "customers@corp.example", "effective_date": date(2026, 7, 10),
}


def test_english_and_chinese_ship_for_both_steps() -> None:
    assert NotificationTemplates().locales(["farewell", "introduction"]) >= {"en", "zh"}


def test_english_farewell_names_successor_and_date() -> None:
    message = NotificationTemplates().render("farewell", "en", CONTEXT)
    assert message.subject == "Corp: your contact Alice is changing to Bob"
    assert "Alice will leave Corp on 10 July 2026" in message.body_text
    assert "Bob looks after you from now on and can be reached at bob@corp.example" in message.body_text
    assert '<a href="mailto:bob@corp.example">bob@corp.example</a>' in message.body_html


def test_chinese_introduction_and_pool_farewell() -> None:
    templates = NotificationTemplates()
    intro = templates.render("introduction", "zh", CONTEXT)
    assert intro.subject == "Bob：您在Corp的新联系人"
    assert "我已接替Alice，成为Acme的联系人" in intro.body_text
    pool = templates.render("farewell", "zh", CONTEXT | {"successor_name": None, "successor_email": None})
    assert "2026年7月10日" in pool.body_text and "customers@corp.example" in pool.body_text
    assert "接替" not in pool.subject


def test_a_customer_without_a_known_name_is_addressed_as_you() -> None:
    """A customer known only by its domain or an address is not named by that in a letter."""
    templates = NotificationTemplates()
    unnamed = CONTEXT | {"customer_name": ""}
    assert "I have taken over from Alice as your contact." in templates.render("introduction", "en", unnamed).body_text
    assert "make sure you keep a direct line to us" in templates.render("farewell", "en", unnamed).body_html
    assert "成为您的联系人" in templates.render("introduction", "zh", unnamed).body_text
    assert "确保您与我们" in templates.render("farewell", "zh", unnamed).body_html
    assert "make sure Acme keeps a direct line" in templates.render("farewell", "en", CONTEXT).body_text


def test_names_cannot_inject_headers_or_markup() -> None:
    hostile = CONTEXT | {"departing_name": "Alice\r\nBcc: all@corp.example", "customer_name": "<script>x()</script>"}
    message = NotificationTemplates().render("farewell", "en", hostile)
    assert "\r" not in message.subject and "\n" not in message.subject
    assert "Alice Bcc: all@corp.example" in message.subject
    assert "<script>" not in message.body_html and "&lt;script&gt;x()&lt;/script&gt;" in message.body_html
    assert "Alice Bcc: all@corp.example will leave" in message.body_text


def test_a_template_dir_overrides_only_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "farewell.en.subject.j2").write_text("Goodbye from {{ departing_name }}\r\nX-Evil: 1", encoding="utf-8")
    templates = NotificationTemplates(tmp_path)
    message = templates.render("farewell", "en", CONTEXT)
    assert message.subject == "Goodbye from Alice X-Evil: 1"
    assert "Alice will leave Corp" in message.body_text

"""Letters people are glad to get, end to end: a rep leaves, and each customer contact receives the
farewell and the introduction through a real SMTP server, in their language, from a named sender,
signed, in the right tense; and `custody templates check` as an operator runs it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from config.policy import DispatchRules, Policy
from config.sections import RepConfig, SmtpConfig
from config.settings import Settings
from connectors.records import Address, Batch, MessageHeaders
from daemon.cli.app import app
from daemon.jobs.departure import depart
from daemon.outbox.compose import Letter, UnsafeMessage, compose
from daemon.outbox.dispatch import Dispatcher
from daemon.outbox.transports.smtp import SmtpTransport
from daemon.sync.engine import register_reps
from daemon.sync.readers import identity_for
from policies.identity import KnownRep
from registry.handover import approve_handover
from registry.models import Contact, ContactPoint, Customer, Notification
from tests.servers.smtp import SmtpServer
from tests.support.handbuilt import NOW, HandBuilt, entry, rep

SIGNATURE = "Corp Trading Ltd\n1 Main Street, London"
POLICY = Policy(
    company_domains=["corp.example"], lookback_days=90,
    ownership={"strategies": ["explicit", "pool"], "requires_approval": True, "grace_period_hours": 24},
    notifications={"company_name": "Corp", "shared_mailbox": "customers@corp.example",
                   "sender_name": "Corp Customer Care", "signature": SIGNATURE},
)
REPS = [RepConfig(email=rep("alice"), name="Alice Archer"), RepConfig(email=rep("li.na"), name="李娜"),
        RepConfig(email=rep("carol"), name="Carol Chen")]
EFFECTIVE = NOW + timedelta(days=7)
LANGUAGE = {"anna@firma.de": "de", "marie@societe.fr": "fr", "luis@empresa.com.mx": "es", "taro@kaisha.co.jp": "ja",
            "wang.yong@gongsi.cn": "zh", "john@acme.com": "en", "hans@globalcorp.com": "de",
            "claire@globalcorp.com": "fr"}
FUTURE = {"en": "李娜 will look after you from 7 July 2026", "de": "Ab dem 7. Juli 2026 wird 李娜 Sie betreuen.",
          "fr": "À partir du 7 juillet 2026, 李娜 prendra le relais", "es": "A partir del 7 de julio de 2026, 李娜 se encargará",
          "ja": "2026年7月7日より、後任として李娜が担当させていただきます。", "zh": "自2026年7月7日起，李娜将接手为您服务"}
PAST = {"en": "I have taken over from Alice Archer", "de": "habe ich die Nachfolge von Alice Archer angetreten",
        "fr": "j’ai succédé à Alice Archer", "es": "he tomado el relevo de Alice Archer",
        "ja": "Alice Archerの後任として、2026年7月7日より担当させていただいております。",
        "zh": "我已于2026年7月7日接替Alice Archer"}


def mail_from(built: HandBuilt, name: str, address: str, days_ago: float) -> None:
    """A customer's message whose From header carries a display name."""
    built._store("company-mail", Batch([MessageHeaders(
        message_id=f"<{address}.{days_ago}@test>", folder="INBOX", date=NOW - timedelta(days=days_ago),
        sender=(Address(name, address),), to=(Address("", rep("alice")),), subject="Order", channel="company")], {}))


def store_customer_locale(engine: Engine, key: str, locale: str) -> None:
    """A customer's language, as a CRM import records it."""
    with engine.begin() as db:
        db.execute(update(Customer.__table__).where(Customer.__table__.c.key == key).values(locale=locale))


def store_contact_locale(engine: Engine, email: str, locale: str) -> None:
    """A contact's own language, as a CRM import records it."""
    contact_id = select(ContactPoint.contact_id).where(ContactPoint.value == email).scalar_subquery()
    with engine.begin() as db:
        db.execute(update(Contact.__table__).where(Contact.__table__.c.id == contact_id).values(locale=locale))


@pytest.fixture
def company(engine: Engine) -> HandBuilt:
    """Alice's customers around the world. 王勇's mail header says "Wang Yong", Alice's address book
    王勇; a CRM recorded French for Globalcorp and German for Hans there, both on a .com domain."""
    settings = Settings(reps=REPS)
    register_reps(engine, settings, identity_for(settings, POLICY))
    built = HandBuilt(engine, POLICY, tuple(KnownRep(r.email, r.name) for r in REPS))
    mail_from(built, "Marie Dupont", "marie@societe.fr", 21)
    mail_from(built, "Taro Yamada", "taro@kaisha.co.jp", 21)
    mail_from(built, "Wang Yong", "wang.yong@gongsi.cn", 21)
    for address in LANGUAGE:
        built.conversation(rep("alice"), address, 2, days_ago=20)
    built.address_book(rep("alice"), "company", entry("c1", "王勇", ("wang.yong@gongsi.cn",), channel="company"))
    store_customer_locale(engine, "globalcorp.com", "fr")
    store_contact_locale(engine, "hans@globalcorp.com", "de")
    return built


def send_all(engine: Engine, handover_id: int, server: SmtpServer, days_after_effective: int = 3) -> None:
    with engine.begin() as db:
        approve_handover(db, handover_id, "cli:compliance")
    rules = DispatchRules(per_mailbox_per_hour=0, per_domain_per_hour=0, quiet_hours=None)
    transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=server.port, security="plain"))
    Dispatcher(engine, rules, transport, clock=lambda: EFFECTIVE + timedelta(days=days_after_effective)).run()


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def letters(engine: Engine, server: SmtpServer) -> dict[tuple[str, str], tuple[EmailMessage, bytes]]:
    """Each received message and its raw bytes by (recipient, step)."""
    with engine.connect() as db:
        steps = dict(db.execute(select(Notification.message_id_header, Notification.step)).all())
    return {(str(m.message["To"]), steps[m.message_id]): (m.message, m.raw) for m in server.received}


def test_each_contact_gets_both_letters_in_their_language_from_a_named_sender(
    engine: Engine, company: HandBuilt, smtp_server: SmtpServer,
) -> None:
    outcome = depart(engine, POLICY, rep("alice"), successor_email=rep("li.na"), effective=EFFECTIVE, now=NOW)
    send_all(engine, outcome.handover_id, smtp_server)

    received = letters(engine, smtp_server)
    assert set(received) == {(address, step) for address in LANGUAGE for step in ("farewell", "introduction")}
    for address, locale in LANGUAGE.items():
        farewell, _ = received[(address, "farewell")]
        introduction, raw = received[(address, "introduction")]
        farewell_text, introduction_text = plain(farewell), plain(introduction)
        assert FUTURE[locale] in farewell_text, (address, farewell_text)
        assert PAST[locale] in introduction_text, (address, introduction_text)
        assert farewell["From"].addresses[0].display_name == "Corp Customer Care"
        assert farewell["From"].addresses[0].addr_spec == "customers@corp.example"
        assert (introduction["From"].addresses[0].display_name, introduction["From"].addresses[0].addr_spec) == (
            "李娜", "li.na@corp.example")
        assert b"From: =?utf-8?b?5p2O5aic?= <li.na@corp.example>" in raw
        for message, text in ((farewell, farewell_text), (introduction, introduction_text)):
            assert SIGNATURE in text
            assert "Corp Trading Ltd<br>1 Main Street, London" in message.get_body(("html",)).get_content()


def test_contacts_are_greeted_by_their_best_known_name(engine: Engine, company: HandBuilt, smtp_server: SmtpServer) -> None:
    outcome = depart(engine, POLICY, rep("alice"), successor_email=rep("li.na"), effective=EFFECTIVE, now=NOW)
    send_all(engine, outcome.handover_id, smtp_server)

    openings = {address: plain(message).split("\n\n")[0]
                for (address, step), (message, _) in letters(engine, smtp_server).items() if step == "farewell"}
    assert openings["wang.yong@gongsi.cn"] == "王勇您好："
    assert openings["taro@kaisha.co.jp"] == "Taro Yamada 様"
    assert openings["marie@societe.fr"] == "Bonjour Marie Dupont,"
    assert openings["anna@firma.de"] == "Sehr geehrte Damen und Herren,"
    assert openings["luis@empresa.com.mx"] == "Buenos días:"


def test_a_farewell_planned_after_the_effective_date_says_who_looks_after_the_customer_now(
    engine: Engine, company: HandBuilt, smtp_server: SmtpServer,
) -> None:
    company.conversation(rep("carol"), "pierre@maison.fr", 2, days_ago=10)
    late = depart(engine, POLICY, rep("carol"), successor_email=rep("li.na"), effective=NOW - timedelta(days=1), now=NOW)
    send_all(engine, late.handover_id, smtp_server, days_after_effective=0)

    farewell, _ = letters(engine, smtp_server)[("pierre@maison.fr", "farewell")]
    text = plain(farewell)
    assert "Carol Chen a quitté Corp le 29 juin 2026" in text
    assert "Depuis le 29 juin 2026, 李娜 a pris le relais" in text and "prendra le relais" not in text


def custody(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout


def configure(folder: Path, policy: str) -> Path:
    (folder / "policy.yaml").write_text(policy, encoding="utf-8")
    (folder / "custody.toml").write_text('policy_file = "policy.yaml"\n', encoding="utf-8")
    return folder / "custody.toml"


def test_templates_check_passes_the_shipped_letters(tmp_path: Path) -> None:
    code, output = custody(configure(tmp_path, "notifications: {company_name: Corp}\n"), "templates", "check")

    assert code == 0
    lines = output.splitlines()
    assert all(line.startswith("ok") and line.endswith("shipped") for line in lines)
    assert {f"{t}.{loc}" for t in ("farewell", "introduction") for loc in ("en", "zh", "de", "fr", "es", "ja")} <= {
        line.split()[1] for line in lines}


def test_templates_check_names_a_broken_company_template(tmp_path: Path) -> None:
    letters_dir = tmp_path / "letters"
    letters_dir.mkdir()
    (letters_dir / "farewell.de.txt.j2").write_text("Guten Tag {{ contact_nmae }},\n", encoding="utf-8")
    (letters_dir / "introduction.en.subject.j2").write_text("{{ successor_name \n", encoding="utf-8")
    config = configure(tmp_path, "notifications: {template_dir: letters}\n")

    code, output = custody(config, "templates", "check")

    assert code == 1
    failing = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 2
    assert f"{letters_dir / 'farewell.de.txt.j2'}: unknown variable contact_nmae" in failing[0]
    assert f"{letters_dir / 'introduction.en.subject.j2'}:1:" in failing[1]
    assert "ok    farewell.fr" in output


def test_the_from_display_name_is_quoted_or_encoded_and_never_a_second_address() -> None:
    letter = Letter(message_id="<a@corp.example>", sender="care@corp.example", to="kim@acme.example", cc=(),
                    subject="Your contact", text="Hello", html="", sender_name='Wang, "Lei" <eve@evil.example>')

    sent = message_from_bytes(compose(letter, NOW).as_bytes(), policy=default)
    chinese = compose(replace(letter, sender_name="李娜"), NOW).as_bytes()

    assert [(a.display_name, a.addr_spec) for a in sent["From"].addresses] == [
        ('Wang, "Lei" <eve@evil.example>', "care@corp.example")]
    assert b"From: =?utf-8?b?5p2O5aic?= <care@corp.example>" in chinese
    with pytest.raises(UnsafeMessage, match="line break"):
        compose(replace(letter, sender_name="Eve\r\nBcc: all@corp.example"), NOW)

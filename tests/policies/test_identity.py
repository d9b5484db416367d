"""Who is internal, what is noise, which customer an address belongs to, and which way mail went."""

import pytest

import policies.identity as identity_module
from config.policy import Policy
from connectors.headers import parse_headers
from connectors.records import AddressBookEntry, Batch
from policies.identity import Identity, KnownRep, normalise_phone
from tests.support.mail import message

POLICY = Policy(company_domains=["acme.test"])
IDENTITY = Identity(POLICY, [KnownRep("ann@acme.test", "Ann Lee", ("ann.home@yahoo.com",))], "DE")


def interpret(raw: bytes):
    return IDENTITY.interpret_message(parse_headers(raw, "INBOX"))


def test_outbound_mail_makes_one_interaction_per_external_recipient() -> None:
    people: dict[str, str] = {}
    raw = message("Ann <ANN@acme.test>", "bo@shop.co.uk, colleague@sales.acme.test", cc="x@gmail.com",
                  message_id="<1@x>")
    fact = IDENTITY.interpret_message(parse_headers(raw, "INBOX"), people)
    assert [(i.rep_email, i.contact.value, i.contact.customer_key, i.direction) for i in fact.interactions] == [
        ("ann@acme.test", "bo@shop.co.uk", "shop.co.uk", "outbound"),
        ("ann@acme.test", "x@gmail.com", "x@gmail.com", "outbound"),
    ]
    assert people == {"ann@acme.test": "Ann", "colleague@sales.acme.test": ""}


def test_inbound_mail_links_the_sender_to_every_internal_recipient() -> None:
    fact = interpret(message("Bo <bo@mail.shop.co.uk>", "ann@acme.test, tom@acme.test"))
    assert [(i.rep_email, i.contact.customer_key, i.direction) for i in fact.interactions] == [
        ("ann@acme.test", "shop.co.uk", "inbound"), ("tom@acme.test", "shop.co.uk", "inbound")]


def test_free_mail_customers_are_people_and_plus_tags_and_gmail_dots_fold() -> None:
    assert IDENTITY.customer_of("li@qq.com") == ("li@qq.com", "person")
    assert IDENTITY.customer_of("li@163.com") == ("li@163.com", "person")
    assert IDENTITY.normalise_email("Jo.Smith+deals@GMail.com") == "josmith@gmail.com"
    assert IDENTITY.normalise_email("jo+x@unknown-provider.test") == "jo+x@unknown-provider.test"
    assert IDENTITY.normalise_email("not an address") is None


def test_noise_never_counts_as_an_interaction() -> None:
    cases = {
        "auto-submitted": {"Auto-Submitted": "auto-replied"},
        "precedence": {"Precedence": "bulk"},
        "list": {"List-Id": "<news.shop.co.uk>"},
    }
    for reason, headers in cases.items():
        fact = interpret(message("bo@shop.co.uk", "ann@acme.test", headers=headers))
        assert (fact.noise_reason, fact.interactions) == (reason, ())
    assert interpret(message("no-reply@shop.co.uk", "ann@acme.test")).noise_reason == "sender"
    assert interpret(message("MAILER-DAEMON@shop.co.uk", "ann@acme.test")).noise_reason == "sender"


def test_mail_to_the_reps_own_personal_address_is_a_relay_not_a_customer() -> None:
    configured = interpret(message("ann@acme.test", "ann.home@yahoo.com"))
    by_name = interpret(message("ann@acme.test", "Ann Lee <annlee@gmail.com>"))
    for fact in (configured, by_name):
        assert fact.interactions == ()
        assert [r.rep_email for r in fact.relays] == ["ann@acme.test"]


def test_address_book_entries_resolve_to_customers_with_e164_phones() -> None:
    entry = AddressBookEntry("phone.vcf", "1", "Anna", ("anna@muller.de",), ("030 1234567",), "Muller GmbH", "personal")
    sighting = IDENTITY.interpret_entry(entry, "ann@acme.test")
    assert sighting is not None
    assert [(c.kind, c.value, c.customer_key) for c in sighting.contacts] == [
        ("email", "anna@muller.de", "muller.de"), ("phone", "+49301234567", "muller.de")]
    assert normalise_phone("12", "DE") is None


def test_a_reader_of_millions_of_addresses_keeps_bounded_memos_and_the_same_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The memos of addresses, domains and senders forget everything at their limit; the facts a
    batch yields stay what an unbounded reader would give."""
    mails = [parse_headers(message(f"Buyer {n} <buyer{n}@shop{n % 97}.test>", "ann@acme.test, noreply@acme.test",
                                   cc=f"other{n}@mill{n % 89}.test", message_id=f"<{n}@x>"), "INBOX")
             for n in range(400)]
    unbounded = Identity(POLICY, [KnownRep("ann@acme.test", "Ann Lee")]).interpret(Batch(list(mails), {}))
    monkeypatch.setattr(identity_module, "MEMO_LIMIT", 50)
    bounded = Identity(POLICY, [KnownRep("ann@acme.test", "Ann Lee")])
    assert bounded.interpret(Batch(list(mails), {})) == unbounded
    assert max(len(bounded._normalised), len(bounded._internal_domains), len(bounded._noise_locals)) <= 50


def test_free_mail_is_matched_by_suffix_and_covers_historical_isps() -> None:
    """worldnet.att.net is att.net's; old ISPs' subscribers are private people, not one organisation."""
    for address in ("pat@worldnet.att.net", "lee@earthlink.net", "kim@juno.com", "sam@mail.comcast.net",
                    "jo@prodigy.net", "ola@daum.net"):
        assert IDENTITY.customer_of(address) == (address, "person"), address
    assert IDENTITY.customer_of("buyer@att.com") == ("att.com", "organisation")
    assert IDENTITY.customer_of("buyer@notatt.net") == ("notatt.net", "organisation")


def test_system_mailboxes_are_never_people() -> None:
    """A bounce or a postmaster notice neither creates a colleague nor a customer contact."""
    people: dict[str, str] = {}
    inbound = IDENTITY.interpret_message(parse_headers(message(
        "postmaster@shop.co.uk", "ann@acme.test, mailer-daemon@mail.acme.test, noreply@acme.test"), "INBOX"), people)
    outbound = IDENTITY.interpret_message(parse_headers(message(
        "ann@acme.test", "abuse@shop.co.uk, bo@shop.co.uk"), "INBOX"), people)
    assert inbound.interactions == ()
    assert [i.contact.value for i in outbound.interactions] == ["bo@shop.co.uk"]
    assert set(people) == {"ann@acme.test"}


def test_a_reps_aliases_are_the_rep() -> None:
    identity = Identity(POLICY, [KnownRep("ann@acme.test", "Ann Lee", aliases=("a.lee@acme-sales.test",))])
    facts = identity.interpret(Batch([
        parse_headers(message("Ann <a.lee@acme-sales.test>", "bo@shop.co.uk", message_id="<1@x>"), "INBOX"),
        parse_headers(message("bo@shop.co.uk", "A. Lee <A.Lee@acme-sales.test>, tom@acme.test", message_id="<2@x>"),
                      "INBOX"),
    ], {}))
    assert {(i.rep_email, i.direction) for m in facts.messages for i in m.interactions} == {
        ("ann@acme.test", "outbound"), ("ann@acme.test", "inbound"), ("tom@acme.test", "inbound")}
    assert {(p.email, p.role) for p in facts.people} == {("ann@acme.test", "rep"), ("tom@acme.test", "colleague")}

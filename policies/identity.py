"""Who is internal, what is noise, which customer an address belongs to, and each interaction's direction.

Pure: given the policy and the known reps, the same batch always yields the same facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import phonenumbers
import tldextract

from config.policy import Policy
from connectors.records import Address, AddressBookEntry, Batch, MessageHeaders
from registry.facts import (
    ContactFact,
    FactBatch,
    InteractionFact,
    MessageFact,
    PersonFact,
    RelayFact,
    SightingFact,
    SkippedFact,
)
from registry.states import Role

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")
_PLUS_SAFE = frozenset({"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com",
                        "icloud.com", "me.com", "fastmail.com", "proton.me", "protonmail.com"})
_DOTS_IGNORED = frozenset({"gmail.com", "googlemail.com"})
F = TypeVar("F", ContactFact, InteractionFact)
MEMO_LIMIT = 100_000
_DOCUMENTATION_TLDS = frozenset({"example", "test"})


class _Seen(NamedTuple):
    """What the policy says of one normalised address. `colleague`: internal and a person, not a
    system mailbox; `customer_key` and `customer_kind` are set for a customer address only."""

    internal: bool
    colleague: bool
    customer: bool
    freemail: bool
    customer_key: str
    customer_kind: str


@dataclass(frozen=True)
class KnownRep:
    """A declared rep; every alias is the same person as `email`."""

    email: str
    name: str = ""
    personal_addresses: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass
class Identity:
    """The policy compiled with the reps known so far."""

    policy: Policy
    reps: Iterable[KnownRep] = ()
    default_region: str = "US"
    company_domains: frozenset[str] = field(init=False)
    freemail: frozenset[str] = field(init=False)
    rep_by_address: dict[str, str] = field(init=False)
    primary_of: dict[str, str] = field(init=False)
    personal_owner: dict[str, str] = field(init=False)
    rep_names: dict[str, str] = field(init=False)
    noise_senders: tuple[re.Pattern[str], ...] = field(init=False)
    system_locals: frozenset[str] = field(init=False)
    plus_safe: frozenset[str] = field(init=False)
    _normalised: dict[str, str | None] = field(init=False, default_factory=dict)
    _internal_domains: dict[str, bool] = field(init=False, default_factory=dict)
    _freemail_domains: dict[str, bool] = field(init=False, default_factory=dict)
    _noise_locals: dict[str, bool] = field(init=False, default_factory=dict)
    _seen: dict[str, _Seen] = field(init=False, default_factory=dict)
    _interned: dict[tuple[object, ...], tuple[object, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.company_domains = frozenset(d.lower().strip(".") for d in self.policy.company_domains)
        self.freemail = self.policy.all_freemail_domains()
        self.noise_senders = tuple(re.compile(p, re.IGNORECASE) for p in self.policy.noise.sender_patterns)
        self.system_locals = frozenset(local.lower() for local in self.policy.noise.system_local_parts)
        self.rep_by_address, self.primary_of, self.personal_owner, self.rep_names = {}, {}, {}, {}
        self.plus_safe = _PLUS_SAFE | self.company_domains
        for rep in self.reps:
            primary = self.plain_address(rep.email) or rep.email.lower()
            self.rep_by_address[primary] = primary
            self.rep_names[primary] = _name_key(rep.name)
            for alias in rep.aliases:
                address = self.plain_address(alias)
                if address and address != primary:
                    self.primary_of[address] = primary
                    self.rep_by_address[address] = primary
            for personal in rep.personal_addresses:
                address = self.plain_address(personal)
                if address:
                    self.personal_owner[address] = primary

    def normalise_email(self, email: str) -> str | None:
        """The address as the registry knows it; a rep's alias is the rep's primary address.

        Memoised: a mailbox repeats the same few thousand addresses many times."""
        if email not in self._normalised:
            _make_room(self._normalised)
            address = self._normalise(email)
            self._normalised[email] = self.primary_of.get(address, address) if address else None
        return self._normalised[email]

    def plain_address(self, email: str) -> str | None:
        """Normalised but not resolved to a primary: how an alias itself is registered."""
        return self._normalise(email)

    def _normalise(self, email: str) -> str | None:
        """Lower-case, IDNA domain, plus-tags and Gmail dots removed where the provider ignores them."""
        local, _, domain = email.strip().rpartition("@")
        if not local:
            return None
        try:
            domain = domain.lower().rstrip(".").encode("idna").decode("ascii")
        except UnicodeError:
            return None
        local = local.lower()
        if domain in self.plus_safe and "+" in local:
            local = local.split("+", 1)[0] or local
        if domain in _DOTS_IGNORED:
            local = local.replace(".", "")
        address = f"{local}@{domain}"
        return address if _EMAIL.match(address) else None

    def is_internal(self, address: str) -> bool:
        domain = address.rpartition("@")[2]
        if domain not in self._internal_domains:
            _make_room(self._internal_domains)
            self._internal_domains[domain] = any(domain == d or domain.endswith("." + d) for d in self.company_domains)
        return address in self.rep_by_address or self._internal_domains[domain]

    def customer_of(self, address: str) -> tuple[str, str]:
        """(customer key, kind): the registrable domain, or the address itself at free-mail domains."""
        domain = address.rpartition("@")[2]
        if self.is_freemail(domain):
            return address, "person"
        return _registrable(domain), "organisation"

    def is_freemail(self, domain: str) -> bool:
        """A free-mail domain or any subdomain of one (worldnet.att.net is att.net's)."""
        if domain not in self._freemail_domains:
            _make_room(self._freemail_domains)
            labels = domain.split(".")
            self._freemail_domains[domain] = any(".".join(labels[i:]) in self.freemail for i in range(len(labels)))
        return self._freemail_domains[domain]

    def is_customer_address(self, address: str) -> bool:
        """An outside person who can be mailed: not internal, not a rep's own personal address, not a
        system mailbox, and at a domain under a public suffix (a typo such as bakerbotts.ocm is nobody)."""
        return not (self.is_internal(address) or address in self.personal_owner or self.is_system(address)
                    or not _routable(address.rpartition("@")[2]))

    def is_system(self, address: str) -> bool:
        """Role and system mailboxes (postmaster, mailer-daemon, no-reply, the noise senders) are
        never people: neither reps, colleagues nor customer contacts."""
        local = address.partition("@")[0]
        return local in self.system_locals or self._noise_sender(local)

    def noise_reason(self, message: MessageHeaders, sender: str) -> str:
        rules = self.policy.noise
        if rules.skip_auto_submitted and message.auto_submitted and message.auto_submitted != "no":
            return "auto-submitted"
        if message.precedence in rules.precedence:
            return "precedence"
        if rules.skip_list_mail and message.list_id:
            return "list"
        if rules.skip_delivery_reports and message.content_type == "multipart/report":
            return "delivery-report"
        return "sender" if self._noise_sender(sender.partition("@")[0]) else ""

    def _noise_sender(self, local: str) -> bool:
        """Memoised: the same senders write again and again, and every pattern is tried on each."""
        if local not in self._noise_locals:
            _make_room(self._noise_locals)
            self._noise_locals[local] = any(p.search(local) for p in self.noise_senders)
        return self._noise_locals[local]

    def _personal(self, rep_email: str, address: str, name: str, freemail: bool) -> bool:
        """A rep's own personal address: configured, or the rep's name at a free-mail domain."""
        if self.personal_owner.get(address) == rep_email:
            return True
        if not freemail:
            return False
        rep_name = self.rep_names.get(rep_email) or _name_key(rep_email.partition("@")[0])
        return bool(rep_name) and rep_name in (_name_key(address.partition("@")[0]), _name_key(name))

    def interpret_message(self, message: MessageHeaders, people: dict[str, str] | None = None) -> MessageFact:
        """`people`, when given, gathers the internal persons the message names (address -> the last
        display name given), so a batch tells the registry of each rep once instead of per message."""
        sender_address = message.sender[0]
        sender = self.normalise_email(sender_address.email) or sender_address.email.lower()
        sender_seen = self._seen_as(sender)
        recipients = self._people(message.to + message.cc + message.bcc)
        noise = self.noise_reason(message, sender)
        if people is not None:
            if sender_seen.colleague and (sender_address.name or sender not in people):
                people[sender] = sender_address.name
            for address, name, known in recipients:
                if known.colleague and (name or address not in people):
                    people[address] = name
        interactions: list[InteractionFact] = []
        relays: list[RelayFact] = []
        if not noise:
            if sender_seen.internal:
                for address, name, known in recipients:
                    if self._personal(sender, address, name, known.freemail):
                        relays.append(RelayFact(sender, address))
                        continue
                    if not known.customer:
                        continue
                    interactions.append(self._intern(
                        InteractionFact(sender, self._contact(address, name, known), "outbound", message.channel)))
                relays += [RelayFact(sender, address) for address, name, known in self._people(message.reply_to)
                           if self._personal(sender, address, name, known.freemail)]
            elif sender_seen.customer and _EMAIL.match(sender):
                contact = self._contact(sender, sender_address.name, sender_seen)
                for address, _, known in recipients:
                    if known.colleague:
                        interactions.append(self._intern(InteractionFact(address, contact, "inbound", message.channel)))
        return MessageFact(
            message_key=message.message_id,
            occurred_at=message.date,  # type: ignore[arg-type]
            subject=message.subject,
            sender_email=sender,
            noise_reason=noise,
            interactions=tuple(dict.fromkeys(interactions)),
            relays=tuple(dict.fromkeys(relays)),
            date_source=message.date_source,
        )

    def interpret_entry(self, entry: AddressBookEntry, owner_email: str) -> SightingFact | None:
        emails = [e for e in (self.normalise_email(x) for x in entry.emails) if e and self.is_customer_address(e)]
        phones = [p for p in (normalise_phone(x, self.default_region) for x in entry.phones) if p]
        if not emails and not phones:
            return None
        customer_key, kind = self._entry_customer(emails, phones, entry.organisation)
        organisation = " ".join(entry.organisation.split()) if kind == "organisation" else ""
        contacts = [ContactFact("email", e, entry.name, customer_key, kind, organisation) for e in emails]
        contacts += [ContactFact("phone", p, entry.name, customer_key, kind, organisation) for p in phones]
        return SightingFact(entry_ref=f"{entry.book}#{entry.entry_id}", rep_email=self._entry_owner(entry, owner_email),
                            channel=entry.channel, contacts=tuple(contacts))

    def interpret(self, batch: Batch, owner_email: str = "") -> FactBatch:
        self._interned.clear()
        facts = FactBatch(skipped=[SkippedFact(s.ref, s.reason) for s in batch.skipped])
        people: dict[str, str] = {}
        for record in batch.records:
            if isinstance(record, MessageHeaders):
                facts.messages.append(self.interpret_message(record, people))
            elif isinstance(record, AddressBookEntry) and record.removed:
                facts.sightings.append(SightingFact(f"{record.book}#{record.entry_id}",
                                                    self._entry_owner(record, owner_email), record.channel, ()))
            elif isinstance(record, AddressBookEntry):
                sighting = self.interpret_entry(record, owner_email)
                if sighting is None:
                    facts.skipped.append(SkippedFact(f"{record.book}#{record.entry_id}", "no usable email or phone"))
                else:
                    facts.sightings.append(sighting)
        facts.people = [PersonFact(address, name, self.role_of(address)) for address, name in people.items()]
        return facts

    def role_of(self, address: str) -> str:
        return Role.REP if address in self.rep_by_address else Role.COLLEAGUE

    def _entry_owner(self, entry: AddressBookEntry, source_owner: str) -> str:
        """An entry's own owner (a CRM's owner column) when it is internal, else the source's owner."""
        owner = self.normalise_email(entry.owner) if entry.owner else None
        return owner if owner and self.is_internal(owner) else source_owner

    def _people(self, addresses: tuple[Address, ...]) -> list[tuple[str, str, _Seen]]:
        """Each normalised address once, with the display name it first came with and what the
        policy says of it: one pass, as a message may name hundreds of people."""
        people: list[tuple[str, str, _Seen]] = []
        taken: set[str] = set()
        normalised = self._normalised
        for item in addresses:
            email = item.email
            address = normalised[email] if email in normalised else self.normalise_email(email)
            if address and address not in taken:
                taken.add(address)
                people.append((address, item.name, self._seen_as(address)))
        return people

    def _contact(self, address: str, name: str, seen: _Seen) -> ContactFact:
        return self._intern(ContactFact("email", address, name, seen.customer_key, seen.customer_kind))

    def _seen_as(self, address: str) -> _Seen:
        """Memoised: a mailbox names the same few thousand addresses again and again, and each
        question the policy asks of one (internal, a system mailbox, a customer's) costs lookups
        by domain and local part."""
        seen = self._seen.get(address)
        if seen is None:
            _make_room(self._seen)
            internal = self.is_internal(address)
            customer = self.is_customer_address(address)
            key, kind = self.customer_of(address) if customer else ("", "")
            seen = _Seen(internal, internal and not self.is_system(address), customer,
                         self.is_freemail(address.rpartition("@")[2]), key, kind)
            self._seen[address] = seen
        return seen

    def _intern(self, fact: F) -> F:
        """One object per distinct fact within a batch, so the batch sent to the registry writer
        pickles each only once."""
        return self._interned.setdefault(fact, fact)  # type: ignore[return-value]

    def _entry_customer(self, emails: list[str], phones: list[str], organisation: str) -> tuple[str, str]:
        for email in emails:
            key, kind = self.customer_of(email)
            if kind == "organisation":
                return key, kind
        if organisation.strip():
            return "org:" + " ".join(organisation.lower().split()), "organisation"
        return (emails[0], "person") if emails else ("tel:" + phones[0], "person")


def _make_room(memo: dict[str, Any]) -> None:
    """Memos forget everything once they hold MEMO_LIMIT entries: a mailbox repeats a few thousand
    addresses, but a reader that syncs millions of messages must not grow without end."""
    if len(memo) >= MEMO_LIMIT:
        memo.clear()


def warm_public_suffixes() -> None:
    """Build the public suffix tree now, so processes forked afterwards share it instead of each
    building its own on first use."""
    _registrable("example.com")


@lru_cache(maxsize=65536)
def _routable(domain: str) -> bool:
    """Under a public suffix, or under a name RFC 2606 reserves for documentation and tests (the demo
    company and test suites write to .example and .test domains)."""
    return bool(_EXTRACT(domain).suffix) or domain.rpartition(".")[2] in _DOCUMENTATION_TLDS


@lru_cache(maxsize=65536)
def _registrable(domain: str) -> str:
    return _EXTRACT(domain).top_domain_under_public_suffix or domain


def _name_key(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def normalise_phone(raw: str, region: str) -> str | None:
    """E.164, or None when the number is not a possible number in any region."""
    raw = raw.removeprefix("tel:").split(";", 1)[0]
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number) or len(str(number.national_number)) < 6:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

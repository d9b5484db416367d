"""Hand-built registries for coverage tests: mail and address books go through the identity
policy and ingest exactly as a sync would store them, with dates chosen by the test."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select, update

from config.policy import Policy
from connectors.records import Address, AddressBookEntry, Batch, MessageHeaders
from policies.identity import Identity, KnownRep
from registry.ingest import store_batch
from registry.models import Customer, Rep, Source
from registry.people import DeclaredRep, declare_reps

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
COMPANY = "corp.example"
POLICY = Policy(
    company_domains=[COMPANY], lookback_days=90, dormant_after_days=365,
    coverage={"contested": {"min_reps": 2, "min_interactions_each": 2},
              "personal_requests": {"enabled": True, "subject_contains": ["whatsapp"]}},
)


def rep(local: str) -> str:
    return f"{local}@{COMPANY}"


@dataclass
class HandBuilt:
    engine: Engine
    policy: Policy = field(default_factory=lambda: POLICY)
    reps: tuple[KnownRep, ...] = ()
    _sources: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    @property
    def identity(self) -> Identity:
        return Identity(self.policy, self.reps)

    def mail(self, sender: str, to: str, days_ago: float, *, subject: str = "Order", cc: str = "", reply_to: str = "",
             source: str = "company-mail", channel: str = "company") -> None:
        """One message exchanged `days_ago` before NOW."""
        headers = MessageHeaders(
            message_id=f"<m{next(self._ids)}@test>", folder="INBOX", date=NOW - timedelta(days=days_ago),
            sender=(Address("", sender),), to=(Address("", to),),
            cc=(Address("", cc),) if cc else (), reply_to=(Address("", reply_to),) if reply_to else (),
            subject=subject, channel=channel,  # type: ignore[arg-type]
        )
        self._store(source, Batch([headers], {}))

    def conversation(self, rep_email: str, customer: str, count: int, days_ago: float) -> None:
        """`count` messages, alternately from the rep and from the customer, one hour apart."""
        for n in range(count):
            sender, to = (rep_email, customer) if n % 2 == 0 else (customer, rep_email)
            self.mail(sender, to, days_ago - n / 24)

    def address_book(self, owner: str, channel: str, *entries: AddressBookEntry, kind: str = "vcard") -> None:
        self._store(f"{owner}-{channel}-{kind}", Batch(list(entries), {}), owner, kind)

    def declare(self, *reps: KnownRep) -> None:
        """Declare reps as the config does at the start of a sync; later mail is read knowing them."""
        self.reps = reps
        with self.engine.begin() as db:
            declare_reps(db, [DeclaredRep(r.email, r.name, aliases=r.aliases,
                                          personal_addresses=r.personal_addresses) for r in reps])

    def update_rep(self, email: str, **values: str) -> None:
        """Status or team as the directory or the config would set them."""
        with self.engine.begin() as db:
            db.execute(update(Rep.__table__).where(Rep.__table__.c.email == email).values(**values))

    def set_owner(self, customer_key: str, rep_email: str | None) -> None:
        with self.engine.begin() as db:
            rep_id = db.execute(select(Rep.id).where(Rep.email == rep_email)).scalar_one() if rep_email else None
            db.execute(update(Customer.__table__).where(Customer.__table__.c.key == customer_key)
                       .values(owner_rep_id=rep_id))

    def _store(self, source: str, batch: Batch, owner: str = "", kind: str = "maildir") -> None:
        if source not in self._sources:
            with self.engine.begin() as db:
                self._sources[source] = db.execute(Source.__table__.insert().values(
                    name=source, kind=kind, channel="company",
                    settings={}, status="ok", last_error="", lease_owner="",
                ).returning(Source.__table__.c.id)).scalar_one()
        store_batch(self.engine, self._sources[source], self.identity.interpret(batch, owner), {})


def entry(entry_id: str, name: str, emails: tuple[str, ...] = (), phones: tuple[str, ...] = (),
          channel: str = "personal", organisation: str = "", book: str = "phone") -> AddressBookEntry:
    return AddressBookEntry(book=book, entry_id=entry_id, name=name, emails=emails, phones=phones,
                            organisation=organisation, channel=channel)  # type: ignore[arg-type]

"""Runs the coverage policy's queries and shapes their rows for reports, the demo summary and jobs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import itemgetter

from sqlalchemy import Connection, Engine, Select, select
from sqlalchemy.dialects import postgresql, sqlite

from config.policy import Policy
from policies.coverage import (
    CLASSES,
    PERSONAL_ONLY,
    SINGLE_THREADED,
    WORKING,
    class_counts,
    coverage_with_reps,
    personal_sighting_evidence,
    rep_relays,
)
from registry.models import CoverageSnapshot, RepStatus, Role, utcnow
from reports.evidence import Person, people

STREAM_ROWS = 2000
"""Rows a server-side cursor fetches at a time."""
_COLUMNS = ("customer_id", "key", "name", "kind", "coverage_class", "owner_rep_id", "pool", "interactions",
            "last_company_contact", "personal_relays", "personal_messages", "personal_requests", "colleagues",
            "personal_sightings", "rep_id", "rep_interactions", "rep_last_at")
"""What a customer is built from, taken from each row of `coverage_with_reps` at once, by position."""


@dataclass(frozen=True, slots=True)
class RepActivity:
    email: str
    name: str
    status: str
    interactions: int
    last_at: datetime


@dataclass(frozen=True, slots=True)
class PersonalSighting:
    rep_email: str
    source: str
    name: str
    entry_ref: str


@dataclass(slots=True)
class CustomerCoverage:
    customer_id: int
    key: str
    name: str
    kind: str
    coverage_class: str
    owner: str
    pool: bool
    interactions: int
    last_company_contact: datetime | None
    personal_relays: int
    personal_messages: int
    personal_requests: int
    reps: list[RepActivity] = field(default_factory=list)
    personal_sightings: list[PersonalSighting] = field(default_factory=list)
    colleagues: int = 0

    @property
    def at_risk(self) -> bool:
        """A rep who works this customer is leaving: the customer's coverage ends on their date."""
        return any(r.status == RepStatus.LEAVING for r in self.reps)


@dataclass(frozen=True)
class RepExposure:
    email: str
    name: str
    team: str
    status: str
    customers: int
    interactions: int
    exposed_customers: int
    exposed_interactions: int
    personal_only_customers: int
    personal_relays: int

    @property
    def exposed_share(self) -> float:
        """Share of the rep's own company-channel interactions that no other active rep backs up."""
        return self.exposed_interactions / self.interactions if self.interactions else 0.0

    @property
    def flagged(self) -> bool:
        return self.personal_relays > 0


def classify(engine: Engine, policy: Policy, now: datetime) -> list[CustomerCoverage]:
    """Every customer with its class and evidence, as of `now`."""
    return list(iter_classify(engine, policy, now))


def iter_classify(engine: Engine, policy: Policy, now: datetime,
                  most_at_risk_first: bool = False) -> Iterator[CustomerCoverage]:
    """Every customer with its class and evidence, as of `now`, one at a time, in customer order or
    most at risk first."""
    with engine.connect() as db:
        for chunk in classified_chunks(db, policy, now, people(db), most_at_risk_first):
            yield from chunk


def classified_chunks(db: Connection, policy: Policy, now: datetime, reps: dict[int, Person],
                      most_at_risk_first: bool = False, size: int = STREAM_ROWS) -> Iterator[list[CustomerCoverage]]:
    """Every customer with its class and evidence, a few thousand at a time.

    Customers and their reps come as one stream, through a server-side cursor on PostgreSQL; the
    personal sightings of each chunk are read as it completes. Memory holds one chunk's evidence,
    never every customer's, and a caller can read more evidence per chunk (a report's messages).
    `reps` is the registry's people by id (`people`), read once by the caller."""
    books_of = personal_sighting_evidence(db.dialect.name)
    chunk: list[CustomerCoverage] = []
    in_books: list[int] = []
    customer: CustomerCoverage | None = None
    result = db.execute(coverage_with_reps(policy, now, most_at_risk_first).execution_options(yield_per=STREAM_ROWS))
    columns = itemgetter(*map(list(result.keys()).index, _COLUMNS))
    for row in result:
        (customer_id, key, name, kind, coverage_class, owner_rep_id, pool, interactions, last, relays, messages,
         requests, colleagues, sightings, rep_id, rep_interactions, rep_last_at) = columns(row)
        if customer is None or customer.customer_id != customer_id:
            if len(chunk) == size:
                yield _completed(db, chunk, reps, books_of, in_books)
                chunk, in_books = [], []
            customer = CustomerCoverage(customer_id, key, name, kind, coverage_class,
                                        reps[owner_rep_id].email if owner_rep_id else "", bool(pool),
                                        int(interactions), last, int(relays), int(messages), int(requests),
                                        colleagues=int(colleagues))
            chunk.append(customer)
            if sightings:
                in_books.append(customer_id)
        if rep_id is not None:
            rep = reps[rep_id]
            customer.reps.append(RepActivity(rep.email, rep.name, rep.status, int(rep_interactions), rep_last_at))
    if chunk:
        yield _completed(db, chunk, reps, books_of, in_books)


def _completed(db: Connection, chunk: list[CustomerCoverage], reps: dict[int, Person], books_of: Select,
               in_books: list[int]) -> list[CustomerCoverage]:
    """The chunk's customers complete: reps most active first, and the personal books each is in,
    read only for the customers `in_books` (the class query counted their entries)."""
    books: dict[int, list[PersonalSighting]] = defaultdict(list)
    for row in db.execute(books_of, {"customer_ids": in_books}) if in_books else ():
        books[row.customer_id].append(
            PersonalSighting(reps[row.rep_id].email if row.rep_id else "", row.source, row.name, row.entry_ref))
    for customer in chunk:
        if len(customer.reps) > 1:
            customer.reps.sort(key=lambda r: (-r.interactions, r.email))
        customer.personal_sightings = books.get(customer.customer_id, [])
    return chunk


def exposure(engine: Engine, policy: Policy, now: datetime) -> list[RepExposure]:
    """Per rep, what leaves with them, most exposed first."""
    fold = ExposureFold()
    with engine.connect() as db:
        directory = people(db)
        for chunk in classified_chunks(db, policy, now, directory):
            for customer in chunk:
                fold.add(customer)
        return fold.result(db, directory, policy, now)


@dataclass
class ExposureFold:
    """Every rep's exposure, added up from customers as they are classified, so a report that
    streams its customers reads the registry's aggregates once for both."""

    figures: defaultdict[str, _Exposed] = field(default_factory=lambda: defaultdict(_Exposed))

    def add(self, customer: CustomerCoverage) -> None:
        for rep in customer.reps:
            self.figures[rep.email].add(customer, rep)
        if customer.coverage_class == PERSONAL_ONLY:
            for email in {s.rep_email for s in customer.personal_sightings if s.rep_email}:
                self.figures[email].personal_only_customers += 1

    def result(self, db: Connection, directory: dict[int, Person], policy: Policy, now: datetime) -> list[RepExposure]:
        """Every declared rep, and every other person with figures, most exposed first."""
        relays = {directory[rep_id].email: int(n) for rep_id, n in db.execute(rep_relays(policy, now))}
        shown = [
            RepExposure(person.email, person.name, person.team, person.status,
                        *self.figures.get(person.email, _Exposed()).counts(), relays.get(person.email, 0))
            for person in directory.values()
            if person.role == Role.REP or person.email in self.figures or person.email in relays
        ]
        return sorted(shown, key=lambda r: (-r.exposed_customers, r.email))


@dataclass
class _Exposed:
    """One rep's running figures while the customers are folded."""

    customers: int = 0
    interactions: int = 0
    exposed_customers: int = 0
    exposed_interactions: int = 0
    personal_only_customers: int = 0

    def add(self, customer: CustomerCoverage, rep: RepActivity) -> None:
        """A customer the rep worked in the window; single-threaded, it leaves when a working rep does."""
        self.customers += 1
        self.interactions += rep.interactions
        if customer.coverage_class == SINGLE_THREADED and rep.status in WORKING:
            self.exposed_customers += 1
            self.exposed_interactions += rep.interactions

    def counts(self) -> tuple[int, int, int, int, int]:
        return (self.customers, self.interactions, self.exposed_customers, self.exposed_interactions,
                self.personal_only_customers)


def coverage_summary(engine: Engine, policy: Policy, now: datetime) -> dict[str, int]:
    """Customers per coverage class, every class present (zero when empty)."""
    with engine.connect() as db:
        return _counts(db, policy, now)


def _counts(db: Connection, policy: Policy, now: datetime) -> dict[str, int]:
    counts = dict.fromkeys(CLASSES, 0)
    counts.update({name: int(n) for name, n in db.execute(class_counts(policy, now))})
    return counts


def record_snapshots(engine: Engine, policy: Policy, now: datetime, days: int = 1) -> int:
    """Store the class counts as of the end of `now`'s day and of the days before it.

    Re-running for a day replaces that day's figures, so the daily job is safe to run twice.
    """
    table = CoverageSnapshot.__table__
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with engine.begin() as db:
        for back in range(days):
            moment = now - timedelta(days=back)
            rows = [{"day": moment.date(), "coverage_class": name, "customers": n, "taken_at": utcnow()}
                    for name, n in _counts(db, policy, moment).items()]
            insert = dialect.insert(table)
            db.execute(insert.on_conflict_do_update(
                index_elements=["day", "coverage_class"],
                set_={"customers": insert.excluded.customers, "taken_at": insert.excluded.taken_at},
            ), rows)
    return days


def snapshot_history(engine: Engine) -> list[tuple[date, dict[str, int]]]:
    """Stored daily counts, oldest first."""
    table = CoverageSnapshot.__table__
    history: dict[date, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CLASSES, 0))
    with engine.connect() as db:
        for day, name, customers in db.execute(
                select(table.c.day, table.c.coverage_class, table.c.customers).order_by(table.c.day)):
            history[day][name] = customers
    return sorted(history.items())

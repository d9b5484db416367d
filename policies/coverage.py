"""Coverage classes, owner choice and dormancy as set-based queries over the registry.

A policy does no I/O: every function here builds a SQLAlchemy Core query from the policy and a
moment in time; its caller runs it. The queries aggregate in the database (SQLite or PostgreSQL),
so classifying millions of interactions never loads them into Python.

Interaction counts come from the aggregates ingest keeps (`CoverageTotal` per customer, rep and
channel, `CoverageBucket` per month), so their cost grows with customers, not with mail: a total
or a month that lies wholly inside a time range counts whole, and only a month that a range's edge
cuts is counted from its interactions. Any moment, `--as-of` included, gives the same figures as
the interactions themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
)

from config.policy import Policy
from registry.batching import among
from registry.models import (
    CoverageBucket,
    CoverageTotal,
    Customer,
    CustomerStatus,
    Interaction,
    Message,
    PersonalRelay,
    Rep,
    RepStatus,
    Role,
    Sighting,
    Source,
)
from registry.utc import UtcTime

COVERED = "covered"
SINGLE_THREADED = "single-threaded"
PERSONAL_ONLY = "personal-channel-only"
CONTESTED = "contested"
UNATTENDED = "unattended"
DORMANT = "dormant"
CLASSES: tuple[str, ...] = (COVERED, SINGLE_THREADED, CONTESTED, PERSONAL_ONLY, UNATTENDED, DORMANT)
SEVERITY: tuple[str, ...] = (PERSONAL_ONLY, SINGLE_THREADED, UNATTENDED, CONTESTED, DORMANT, COVERED)
"""Most at risk first. Personal-channel-only: the company holds no company-channel thread at all;
single-threaded: the customer leaves with one rep; unattended: contact is lapsing with nobody
working it; contested: reachable, but nobody agreed owns it; dormant: already back in the pool;
covered: several reps carry it."""
WORKING = (RepStatus.ACTIVE, RepStatus.LEAVING)
"""Rep statuses that cover a customer: a rep who is leaving still works until the effective date."""

_interaction = Interaction.__table__
_bucket = CoverageBucket.__table__
_total = CoverageTotal.__table__
_rep = Rep.__table__
_customer = Customer.__table__
_sighting = Sighting.__table__
_relay = PersonalRelay.__table__
_message = Message.__table__
_source = Source.__table__


def window_start(policy: Policy, now: datetime) -> datetime:
    return now - timedelta(days=policy.lookback_days)


def dormant_before(policy: Policy, now: datetime) -> datetime:
    return now - timedelta(days=policy.dormant_after_days)


def _in_window(column: ColumnElement, policy: Policy, now: datetime) -> ColumnElement[bool]:
    """Both ends inclusive: an interaction exactly lookback_days old still counts."""
    return and_(column >= window_start(policy, now), column <= now)


def credited(policy: Policy) -> ColumnElement[bool]:
    """Whose mail counts: declared reps, or every employee when the policy says so."""
    return literal(True) if policy.coverage.credit == "employees" else _rep.c.role == Role.REP


def is_credited(policy: Policy, role: str) -> bool:
    """`credited` for a person already read, so a query can take their ids instead of joining reps."""
    return policy.coverage.credit == "employees" or role == Role.REP


def _rep_mail(policy: Policy, now: datetime) -> CTE:
    """Per customer and rep: company-channel interactions in the window (how many, first, last), the
    last company-channel one up to now, and other-channel interactions in the window. A customer and
    rep without a row had no mail up to now.

    Read from the aggregates, from coarse to fine and only where needed: a customer and rep whose
    mail lies wholly inside the window or wholly before it answer from their total; otherwise from
    their months, of which one the window's start or `now` cuts is read from its interactions
    (through the index on customer and time). So the figures are exact at any moment."""
    start = window_start(policy, now)
    total, month = _total.c, _bucket.c
    crossing = or_(total.last_at > now, and_(total.first_at < start, total.last_at >= start))
    whole_totals = _figures(total, start, now).where(total.first_at <= now, ~crossing)
    of_crossing = tuple_(month.customer_id, month.rep_id, month.channel).in_(
        select(total.customer_id, total.rep_id, total.channel).where(total.first_at <= now, crossing))
    months_of_crossing = _figures(month, start, now).where(of_crossing, month.first_at <= now)
    cut = or_(month.last_at > now, and_(month.first_at < start, month.last_at >= start))
    in_window = _in_month(case((month.first_at < start, start), else_=month.first_at),
                          case((month.last_at > now, now), else_=month.last_at))
    at = _interaction.c.occurred_at
    counted = _month_figure(func.count(), in_window)
    company = month.channel == "company"
    cut_months = (
        select(
            month.customer_id, month.rep_id,
            case((company, counted), else_=0),
            case((company, _month_figure(func.min(at), in_window))),
            case((company, _month_figure(func.max(at), in_window))),
            case((and_(company, month.last_at > now), _month_figure(func.max(at), _in_month(month.first_at, now)))),
            case((~company, counted), else_=0),
        )
        .where(of_crossing, month.first_at <= now, cut)
    )
    rows = whole_totals.union_all(months_of_crossing, cut_months).subquery("rep_months")
    return (
        select(rows.c.customer_id, rows.c.rep_id, func.sum(rows.c.interactions).label("interactions"),
               func.min(rows.c.first_at).label("first_at"), func.max(rows.c.last_at).label("last_at"),
               func.max(rows.c.company_last).label("company_last"), func.sum(rows.c.personal).label("personal"))
        .group_by(rows.c.customer_id, rows.c.rep_id)
        .cte("rep_mail")
    )


def _in_month(since: ColumnElement, until: ColumnElement) -> ColumnElement[bool]:
    """The outer query's month's interactions between `since` and `until`."""
    month, at = _bucket.c, _interaction.c.occurred_at
    # `+ 0`: SQLite would otherwise find them by rep, whose month holds far more mail than a customer's
    return and_(_interaction.c.customer_id == month.customer_id, at >= since, at <= until,
                _interaction.c.rep_id + 0 == month.rep_id, _interaction.c.channel == month.channel)


def _month_figure(figure: ColumnElement, where: ColumnElement[bool]) -> ColumnElement:
    """A figure of some of a month's interactions, correlated row by row so that both backends read
    them through the index on customer and time, never the whole table."""
    return select(figure).where(where).correlate(_bucket).scalar_subquery()


def _figures(span: Any, start: datetime, now: datetime) -> Select:
    """The figures of an aggregate row (a total or a month), counted when the row lies wholly in
    the window, or wholly up to now for the last contact; a row a boundary cuts counts nothing here."""
    company = span.channel == "company"
    in_window = and_(span.first_at >= start, span.last_at <= now)
    return select(
        span.customer_id, span.rep_id,
        case((and_(company, in_window), span.interactions), else_=0).label("interactions"),
        case((and_(company, in_window), span.first_at)).label("first_at"),
        case((and_(company, in_window), span.last_at)).label("last_at"),
        case((and_(company, span.last_at <= now), span.last_at)).label("company_last"),
        case((and_(~company, in_window), span.interactions), else_=0).label("personal"),
    )


def rep_activity(policy: Policy, now: datetime) -> Select:
    """Per customer and rep: company-channel interactions in the window, first and last of them."""
    return _activity(policy, _rep_mail(policy, now))


def _activity(policy: Policy, mail: CTE) -> Select:
    return (
        select(mail.c.customer_id, mail.c.rep_id, _rep.c.status.label("rep_status"), _rep.c.team,
               mail.c.interactions, mail.c.first_at, mail.c.last_at)
        .join(_rep, _rep.c.id == mail.c.rep_id)
        .where(credited(policy), mail.c.interactions > 0)
    )


def _colleagues(policy: Policy, mail: CTE) -> Select:
    """Per customer: colleagues (internal people who are not declared reps) with company-channel mail
    in the window. They get no coverage credit, but a report can say the customer is not alone."""
    return (
        select(mail.c.customer_id, func.count(func.distinct(mail.c.rep_id)).label("colleagues"))
        .join(_rep, _rep.c.id == mail.c.rep_id)
        .where(~credited(policy) if policy.coverage.credit == "reps" else literal(False), mail.c.interactions > 0)
        .group_by(mail.c.customer_id)
    )


def _per_customer(policy: Policy, mail: CTE) -> Subquery:
    """Reps per customer; a team counts as one camp in a contest, a rep without a team as their own."""
    activity = _activity(policy, mail).subquery("activity")
    active = activity.c.rep_status.in_(WORKING)
    qualifying = and_(active, activity.c.interactions >= policy.coverage.contested.min_interactions_each)
    camp = case((activity.c.team != "", "team:" + activity.c.team),
                else_="rep:" + cast(activity.c.rep_id, String))
    return (
        select(
            activity.c.customer_id,
            func.sum(case((active, 1), else_=0)).label("active_reps"),
            func.count(func.distinct(case((qualifying, camp), else_=None))).label("rival_camps"),
            func.count().label("reps"),
            func.sum(activity.c.interactions).label("interactions"),
            func.max(activity.c.interactions).label("top_rep_interactions"),
            func.sum(case((activity.c.rep_status == RepStatus.LEAVING, 1), else_=0)).label("leaving_reps"),
        )
        .group_by(activity.c.customer_id)
        .subquery("per_customer")
    )


def _history(policy: Policy, mail: CTE) -> Subquery:
    """Every customer's mail up to now: last company-channel contact of a credited rep, and the
    interactions synced from a rep's personal mailbox (a source marked personal) in the window. A
    customer without a row had no mail with anyone yet at `now`."""
    counts = credited(policy)
    return (
        select(mail.c.customer_id, func.max(case((counts, mail.c.company_last))).label("last_at"),
               func.sum(case((counts, mail.c.personal), else_=0)).label("personal_messages"))
        .join(_rep, _rep.c.id == mail.c.rep_id)
        .group_by(mail.c.customer_id)
        .subquery("history")
    )


def _in_address_books() -> Subquery:
    """Customers an address book or import knows; books are a present state, whatever `now` is."""
    return select(_sighting.c.customer_id).distinct().subquery("in_address_books")


def _personal_sightings() -> Subquery:
    """Entries of personal address books, however many points each lists.

    Address books are a present state, not dated events: a sighting counts whatever `now` is.
    """
    entries = (select(_sighting.c.customer_id, _sighting.c.source_id, _sighting.c.entry_ref)
               .where(_sighting.c.channel == "personal").distinct().subquery("personal_entries"))
    return (select(entries.c.customer_id, func.count().label("n"))
            .group_by(entries.c.customer_id).subquery("personal_sightings"))


def _relays(policy: Policy, now: datetime) -> Subquery:
    """Customer threads a rep copied or forwarded to the rep's own personal address: each relay
    counts once for every customer its message reached through that rep. Read from the few relays
    to their interactions, never the other way round."""
    reached = (
        select(_relay.c.id, _interaction.c.customer_id).distinct()
        .select_from(_relay)
        .join(_interaction, and_(_interaction.c.message_id == _relay.c.message_id,
                                 _interaction.c.rep_id == _relay.c.rep_id))
        .join(_rep, _rep.c.id == _relay.c.rep_id)
        .where(_in_window(_relay.c.occurred_at, policy, now), credited(policy))
        .subquery("reached")
    )
    return (select(reached.c.customer_id, func.count().label("n"))
            .group_by(reached.c.customer_id).subquery("relays"))


def personal_request_condition(policy: Policy) -> ColumnElement[bool]:
    """Subject rule of the policy, as LIKE patterns every backend understands; false when disabled."""
    rule = policy.coverage.personal_requests
    words = [w.lower() for w in rule.subject_contains if w.strip()] if rule.enabled else []
    if not words:
        return literal(False)
    subject = func.lower(_message.c.subject)
    return or_(*[subject.like(f"%{_escape_like(w)}%", escape="\\") for w in words])


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _requests(policy: Policy, now: datetime) -> Subquery:
    return (
        select(_interaction.c.customer_id, func.count(func.distinct(_interaction.c.message_id)).label("n"))
        .join(_message, _message.c.id == _interaction.c.message_id)
        .join(_rep, _rep.c.id == _interaction.c.rep_id)
        .where(_interaction.c.direction == "inbound", _in_window(_interaction.c.occurred_at, policy, now),
               personal_request_condition(policy), credited(policy))
        .group_by(_interaction.c.customer_id)
        .subquery("requests")
    )


def customer_coverage(policy: Policy, now: datetime) -> Select:
    """One row per customer: its class, the figures that decided it, and the colleagues in touch.

    Order of the rules: contested (reps of several teams, or unteamed reps, each working the
    customer enough, and no owner recorded), covered, single-threaded (active reps with
    company-channel interactions in the window); then, without such coverage, dormant when the
    last company-channel contact is older than the policy allows, personal-channel-only when any
    personal evidence exists, dormant when there never was company-channel contact, and
    unattended for the rest (a lapsing customer, or one whose only reps in the window have left).
    """
    return _coverage(policy, now, _rep_mail(policy, now))


def _coverage(policy: Policy, now: datetime, mail: CTE) -> Select:
    per = _per_customer(policy, mail)
    history = _history(policy, mail)
    last_contact = history.c.last_at
    sightings = _personal_sightings()
    booked = _in_address_books()
    relays, requests = _relays(policy, now), _requests(policy, now)
    colleagues = _colleagues(policy, mail).subquery("colleagues")
    active_reps = func.coalesce(per.c.active_reps, 0)
    personal = (func.coalesce(sightings.c.n, 0) + func.coalesce(history.c.personal_messages, 0)
                + func.coalesce(relays.c.n, 0) + func.coalesce(requests.c.n, 0))
    contested = policy.coverage.contested
    coverage_class = case(
        (and_(per.c.rival_camps >= contested.min_reps, _customer.c.owner_rep_id.is_(None)), CONTESTED),
        (active_reps >= 2, COVERED),
        (active_reps == 1, SINGLE_THREADED),
        (last_contact < dormant_before(policy, now), DORMANT),
        (personal > 0, PERSONAL_ONLY),
        (last_contact.is_(None), DORMANT),
        else_=UNATTENDED,
    )
    return (
        select(
            _customer.c.id.label("customer_id"), _customer.c.key, _customer.c.name, _customer.c.kind,
            _customer.c.owner_rep_id, _customer.c.pool,
            active_reps.label("active_reps"),
            func.coalesce(per.c.interactions, 0).label("interactions"),
            type_coerce(last_contact, UtcTime).label("last_company_contact"),
            func.coalesce(sightings.c.n, 0).label("personal_sightings"),
            func.coalesce(history.c.personal_messages, 0).label("personal_messages"),
            func.coalesce(relays.c.n, 0).label("personal_relays"),
            func.coalesce(requests.c.n, 0).label("personal_requests"),
            coverage_class.label("coverage_class"),
            func.coalesce(colleagues.c.colleagues, 0).label("colleagues"),
            func.coalesce(per.c.top_rep_interactions, 0).label("top_rep_interactions"),
            func.coalesce(per.c.leaving_reps, 0).label("leaving_reps"),
            personal.label("personal_evidence"),
        )
        .select_from(_customer)
        .outerjoin(per, per.c.customer_id == _customer.c.id)
        .outerjoin(history, history.c.customer_id == _customer.c.id)
        .outerjoin(sightings, sightings.c.customer_id == _customer.c.id)
        .outerjoin(relays, relays.c.customer_id == _customer.c.id)
        .outerjoin(requests, requests.c.customer_id == _customer.c.id)
        .outerjoin(booked, booked.c.customer_id == _customer.c.id)
        .outerjoin(colleagues, colleagues.c.customer_id == _customer.c.id)
        .where(_customer.c.status != CustomerStatus.MERGED,
               or_(history.c.customer_id.is_not(None), booked.c.customer_id.is_not(None)))
    )


def coverage_with_reps(policy: Policy, now: datetime, most_at_risk_first: bool = False) -> Select:
    """`customer_coverage` with its evidence of reps: one row per customer and credited rep with
    company-channel mail in the window (`rep_id`, `rep_interactions`, `rep_last_at`), or one row
    without a rep; a customer's rows come together. Both read the aggregates once.

    In customer order, or most at risk first: by class severity (`SEVERITY`), then customers a
    leaving rep works, then those whose mail rests most on one rep, then those with the most
    personal evidence."""
    mail = _rep_mail(policy, now)
    coverage = _coverage(policy, now, mail).subquery("coverage")
    activity = _activity(policy, mail).subquery("activity")
    rows = (
        select(coverage, activity.c.rep_id, activity.c.interactions.label("rep_interactions"),
               type_coerce(activity.c.last_at, UtcTime).label("rep_last_at"))
        .outerjoin(activity, activity.c.customer_id == coverage.c.customer_id)
    )
    if not most_at_risk_first:
        return rows.order_by(coverage.c.customer_id)
    severity = case({name: rank for rank, name in enumerate(SEVERITY)}, value=coverage.c.coverage_class,
                    else_=len(SEVERITY))
    return rows.order_by(severity, (coverage.c.leaving_reps > 0).desc(), coverage.c.top_rep_interactions.desc(),
                         coverage.c.personal_evidence.desc(), coverage.c.key, coverage.c.customer_id)


def class_counts(policy: Policy, now: datetime) -> Select:
    coverage = customer_coverage(policy, now).subquery("coverage")
    return (select(coverage.c.coverage_class, func.count().label("customers"))
            .group_by(coverage.c.coverage_class))


def personal_sighting_evidence(dialect: str) -> Select:
    """Which rep keeps which customer contact in which personal address book or import, for the
    customers given as `customer_ids` when it runs."""
    return (
        select(_sighting.c.customer_id, _sighting.c.rep_id, _source.c.name.label("source"),
               func.max(_sighting.c.name).label("name"), _sighting.c.entry_ref)
        .join(_source, _source.c.id == _sighting.c.source_id)
        .where(_sighting.c.channel == "personal", among(_sighting.c.customer_id, "customer_ids", dialect))
        .group_by(_sighting.c.customer_id, _sighting.c.rep_id, _source.c.name, _sighting.c.entry_ref)
        .order_by(_sighting.c.customer_id, _source.c.name, _sighting.c.entry_ref)
    )


def rep_relays(policy: Policy, now: datetime) -> Select:
    """(rep_id, n): how often each rep relayed company mail to their own personal address in the window."""
    return (select(_relay.c.rep_id, func.count().label("n"))
            .where(_in_window(_relay.c.occurred_at, policy, now))
            .group_by(_relay.c.rep_id))


def owner_candidates(policy: Policy, now: datetime) -> Select:
    """(customer_id, rep_id) of the owner the policy's rule picks, for customers without one.

    Contested customers get an owner only from a CRM import: first contact or interaction counts
    do not settle a contest, an agreed owner does.
    """
    mail = _rep_mail(policy, now)
    coverage = _coverage(policy, now, mail).subquery("coverage")
    rule = policy.coverage.owner_rule
    if rule == "crm":
        ranked = (
            select(_sighting.c.customer_id, _sighting.c.rep_id,
                   func.row_number().over(partition_by=_sighting.c.customer_id,
                                          order_by=(_sighting.c.seen_at.desc(), _sighting.c.id.desc())).label("rank"))
            .join(_source, _source.c.id == _sighting.c.source_id)
            .join(_rep, _rep.c.id == _sighting.c.rep_id)
            .where(_source.c.kind == "csv", _sighting.c.channel == "company", _rep.c.status == RepStatus.ACTIVE)
            .subquery("ranked")
        )
        eligible = coverage.c.coverage_class != DORMANT
    else:
        activity = _activity(policy, mail).subquery("activity")
        order = ((activity.c.first_at.asc(), activity.c.rep_id.asc()) if rule == "first-to-engage"
                 else (activity.c.interactions.desc(), activity.c.first_at.asc(), activity.c.rep_id.asc()))
        ranked = (
            select(activity.c.customer_id, activity.c.rep_id,
                   func.row_number().over(partition_by=activity.c.customer_id, order_by=order).label("rank"))
            .where(activity.c.rep_status == RepStatus.ACTIVE)
            .subquery("ranked")
        )
        eligible = coverage.c.coverage_class.in_((COVERED, SINGLE_THREADED))
    return (
        select(ranked.c.customer_id, ranked.c.rep_id)
        .join(coverage, coverage.c.customer_id == ranked.c.customer_id)
        .where(ranked.c.rank == 1, coverage.c.owner_rep_id.is_(None), eligible)
        .order_by(ranked.c.customer_id)
    )


def dormant_customers(policy: Policy, now: datetime) -> Select:
    """Dormant customers still holding an owner or outside the public pool."""
    coverage = customer_coverage(policy, now).subquery("coverage")
    return (
        select(coverage.c.customer_id, coverage.c.owner_rep_id, coverage.c.last_company_contact)
        .where(coverage.c.coverage_class == DORMANT,
               or_(coverage.c.owner_rep_id.is_not(None), coverage.c.pool.is_(False)))
        .order_by(coverage.c.customer_id)
    )

"""Coverage classes on hand-built registries, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from config.policy import Policy
from policies.identity import KnownRep
from reports.classification import CustomerCoverage, classify, coverage_summary, exposure
from tests.support.handbuilt import NOW, POLICY, HandBuilt, entry, rep

ALICE, BOB, CAROL = rep("alice"), rep("bob"), rep("carol")
SECOND = 1 / 86400


@pytest.fixture
def world(engine: Engine) -> HandBuilt:
    return HandBuilt(engine, reps=(KnownRep(ALICE, "Alice Smith", ("alice.private@outlook.com",)),
                                   KnownRep(BOB, "Bob Jones"), KnownRep(CAROL, "Carol White")))


def by_key(world: HandBuilt, policy: Policy = POLICY) -> dict[str, CustomerCoverage]:
    return {c.key: c for c in classify(world.engine, policy, NOW)}


def test_two_active_reps_cover_a_customer_and_both_appear_as_evidence(world: HandBuilt) -> None:
    world.conversation(ALICE, "buyer@acme.example", 3, days_ago=10)
    world.mail(BOB, "cfo@acme.example", days_ago=20)

    acme = by_key(world)["acme.example"]

    assert acme.coverage_class == "covered"
    assert [(r.email, r.interactions) for r in acme.reps] == [(ALICE, 3), (BOB, 1)]
    assert acme.interactions == 4
    assert acme.last_company_contact == NOW - timedelta(days=10) + timedelta(hours=2)


def test_one_rep_makes_a_customer_single_threaded(world: HandBuilt) -> None:
    world.conversation(BOB, "ops@globex.example", 2, days_ago=5)

    globex = by_key(world)["globex.example"]

    assert globex.coverage_class == "single-threaded"
    assert [r.email for r in globex.reps] == [BOB]


def test_several_reps_working_a_customer_without_owner_is_contested_until_one_is_agreed(world: HandBuilt) -> None:
    world.conversation(ALICE, "a@initech.example", 2, days_ago=30)
    world.conversation(BOB, "b@initech.example", 2, days_ago=40)

    assert by_key(world)["initech.example"].coverage_class == "contested"
    world.set_owner("initech.example", BOB)
    assert by_key(world)["initech.example"].coverage_class == "covered"


def test_colleagues_of_one_team_cover_a_customer_reps_of_two_teams_contest_it(world: HandBuilt) -> None:
    world.conversation(ALICE, "a@initech.example", 2, days_ago=30)
    world.conversation(BOB, "b@initech.example", 2, days_ago=40)
    world.conversation(CAROL, "c@other.example", 1, days_ago=40)
    world.update_rep(ALICE, team="emea")
    world.update_rep(BOB, team="emea")
    world.update_rep(CAROL, team="apac")

    assert by_key(world)["initech.example"].coverage_class == "covered"
    world.conversation(CAROL, "c@initech.example", 2, days_ago=20)
    assert by_key(world)["initech.example"].coverage_class == "contested"


def test_a_second_rep_below_the_contest_threshold_only_covers(world: HandBuilt) -> None:
    world.conversation(ALICE, "a@hooli.example", 4, days_ago=30)
    world.mail(BOB, "b@hooli.example", days_ago=3)

    assert by_key(world)["hooli.example"].coverage_class == "covered"


def test_a_customer_known_only_from_a_personal_address_book_is_personal_channel_only(world: HandBuilt) -> None:
    world.address_book(CAROL, "personal", entry("1", "Dana Lee", ("dana@umbrella.example",), ("+1 415 555 0100",)))

    umbrella = by_key(world)["umbrella.example"]

    assert umbrella.coverage_class == "personal-channel-only"
    assert [(s.rep_email, s.name) for s in umbrella.personal_sightings] == [(CAROL, "Dana Lee")]
    assert umbrella.reps == [] and umbrella.last_company_contact is None


def test_a_company_address_book_is_not_personal_evidence(world: HandBuilt) -> None:
    world.address_book(CAROL, "company", entry("1", "Dana Lee", ("dana@umbrella.example",), channel="company"))

    assert by_key(world)["umbrella.example"].coverage_class == "dormant"


def test_personal_evidence_wins_once_company_mail_left_the_window(world: HandBuilt) -> None:
    world.mail(ALICE, "joe@stark.example", days_ago=120)
    world.address_book(ALICE, "personal", entry("7", "Joe", ("joe@stark.example",)))

    stark = by_key(world)["stark.example"]

    assert stark.coverage_class == "personal-channel-only"
    assert stark.interactions == 0 and stark.last_company_contact == NOW - timedelta(days=120)


def test_a_customer_whose_company_mail_is_older_than_the_dormancy_horizon_is_dormant_even_in_a_phone_book(
        world: HandBuilt) -> None:
    world.mail(ALICE, "joe@stark.example", days_ago=400)
    world.address_book(ALICE, "personal", entry("7", "Joe", ("joe@stark.example",)))

    stark = by_key(world)["stark.example"]

    assert (stark.coverage_class, len(stark.personal_sightings)) == ("dormant", 1)


def test_mail_synced_from_a_personal_mailbox_is_personal_evidence(world: HandBuilt) -> None:
    world.mail(BOB, "k@wayne.example", days_ago=2, source="bob-home", channel="personal")

    wayne = by_key(world)["wayne.example"]

    assert (wayne.coverage_class, wayne.personal_messages, wayne.interactions) == ("personal-channel-only", 1, 0)


@pytest.mark.parametrize(("days_ago", "expected"), [
    (0, "single-threaded"),
    (90, "single-threaded"),
    (90 + SECOND, "unattended"),
    (365, "unattended"),
    (365 + SECOND, "dormant"),
    (-SECOND, None),
])
def test_window_boundaries(world: HandBuilt, days_ago: float, expected: str | None) -> None:
    """The lookback window and the dormancy horizon both include their exact edge; a customer whose
    first mail is dated after `now` is not a customer yet (a report as of last quarter does not list
    the customers met since)."""
    world.mail(ALICE, "x@edge.example", days_ago=days_ago)

    edge = by_key(world).get("edge.example")
    assert (edge.coverage_class if edge else None) == expected


def test_a_customer_known_only_from_a_company_address_book_is_listed_whatever_the_date(world: HandBuilt) -> None:
    world.address_book(BOB, "company", entry("5", "Ola Nord", ("ola@fjord.example",), channel="company"))

    assert by_key(world)["fjord.example"].coverage_class == "dormant"


def test_a_longer_lookback_in_the_policy_brings_older_mail_back_into_the_window(world: HandBuilt) -> None:
    world.mail(ALICE, "x@edge.example", days_ago=100)
    longer = POLICY.model_copy(update={"lookback_days": 120})

    assert by_key(world, longer)["edge.example"].coverage_class == "single-threaded"


def test_reps_who_left_do_not_cover(world: HandBuilt) -> None:
    world.mail(ALICE, "x@shared.example", days_ago=3)
    world.mail(BOB, "y@shared.example", days_ago=3)
    world.mail(CAROL, "z@orphan.example", days_ago=3)
    world.update_rep(BOB, status="deactivated")
    world.update_rep(CAROL, status="departed")

    classes = by_key(world)

    assert classes["shared.example"].coverage_class == "single-threaded"
    assert classes["orphan.example"].coverage_class == "unattended"
    assert [(r.email, r.status) for r in classes["orphan.example"].reps] == [(CAROL, "departed")]


def test_noise_never_counts_as_coverage(world: HandBuilt) -> None:
    world.mail("newsletter@vendor.example", ALICE, days_ago=1)
    world.mail(ALICE, "x@vendor.example", days_ago=200)

    assert by_key(world)["vendor.example"].coverage_class == "unattended"


def test_a_rep_copying_customer_mail_to_a_personal_address_is_flagged(world: HandBuilt) -> None:
    world.mail(BOB, "buyer@acme.example", days_ago=4, cc="bob.jones@gmail.com")
    world.mail(ALICE, "buyer@acme.example", days_ago=5, cc="alice.private@outlook.com")
    world.mail(CAROL, "buyer@acme.example", days_ago=6)

    acme = by_key(world)["acme.example"]
    flagged = {r.email: r.personal_relays for r in exposure(world.engine, POLICY, NOW) if r.flagged}

    assert acme.personal_relays == 2
    assert flagged == {ALICE: 1, BOB: 1}
    assert "gmail.com" not in by_key(world) and "bob.jones@gmail.com" not in by_key(world)


def test_a_rep_asking_customers_to_reply_to_a_personal_address_is_flagged(world: HandBuilt) -> None:
    world.mail(CAROL, "buyer@acme.example", days_ago=4, reply_to="carol.white@gmail.com")

    flagged = [r.email for r in exposure(world.engine, POLICY, NOW) if r.flagged]

    assert by_key(world)["acme.example"].personal_relays == 1
    assert flagged == [CAROL]


def test_relays_outside_the_window_no_longer_flag(world: HandBuilt) -> None:
    world.mail(BOB, "buyer@acme.example", days_ago=200, cc="bob.jones@gmail.com")

    assert not any(r.flagged for r in exposure(world.engine, POLICY, NOW))


def test_customers_asking_to_move_to_a_personal_channel_when_the_rule_is_enabled(world: HandBuilt) -> None:
    world.mail("li@lotus.example", ALICE, days_ago=3, subject="Can we continue on WhatsApp?")
    world.mail(ALICE, "li@lotus.example", days_ago=2, subject="Re: Can we continue on WhatsApp?")
    disabled = POLICY.model_copy(update={"coverage": POLICY.coverage.model_copy(
        update={"personal_requests": POLICY.coverage.personal_requests.model_copy(update={"enabled": False})})})

    assert by_key(world)["lotus.example"].personal_requests == 1
    assert by_key(world, disabled)["lotus.example"].personal_requests == 0


def test_exposure_counts_what_has_no_other_active_rep(world: HandBuilt) -> None:
    world.conversation(ALICE, "a@one.example", 3, days_ago=10)
    world.conversation(ALICE, "a@two.example", 2, days_ago=10)
    world.conversation(ALICE, "a@three.example", 4, days_ago=10)
    world.mail(BOB, "b@three.example", days_ago=10)
    world.address_book(ALICE, "personal", entry("1", "P", ("p@phoneonly.example",)))

    alice = next(r for r in exposure(world.engine, POLICY, NOW) if r.email == ALICE)
    bob = next(r for r in exposure(world.engine, POLICY, NOW) if r.email == BOB)

    assert (alice.customers, alice.interactions) == (3, 9)
    assert (alice.exposed_customers, alice.exposed_interactions) == (2, 5)
    assert alice.exposed_share == pytest.approx(5 / 9)
    assert alice.personal_only_customers == 1
    assert (bob.exposed_customers, bob.exposed_share) == (0, 0.0)


def test_summary_lists_every_class(world: HandBuilt) -> None:
    world.conversation(ALICE, "a@one.example", 2, days_ago=10)
    world.mail(BOB, "b@one.example", days_ago=1)
    world.mail(CAROL, "c@two.example", days_ago=1)

    assert coverage_summary(world.engine, POLICY, NOW) == {
        "covered": 1, "single-threaded": 1, "contested": 0, "personal-channel-only": 0,
        "unattended": 0, "dormant": 0,
    }

"""The successor policy: each strategy on its own, their order, and the reasons they give."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from policies.ownership import Departure, choose_successors
from registry.departure_values import CoveringRep, CustomerHistory, RepProfile

DAY = datetime(2026, 6, 1, tzinfo=timezone.utc)
ALICE = RepProfile(1, "alice@corp.example", "Alice", team="east", manager_id=9)
BOB = RepProfile(2, "bob@corp.example", "Bob", team="east", owned_customers=5)
CAROL = RepProfile(3, "carol@corp.example", "Carol", team="east", owned_customers=1)
DAN = RepProfile(4, "dan@corp.example", "Dan", team="west")
MARY = RepProfile(9, "mary@corp.example", "Mary")
REPS = {r.id: r for r in (ALICE, BOB, CAROL, DAN, MARY)}


def customer(customer_id: int, *covering: CoveringRep) -> CustomerHistory:
    return CustomerHistory(customer_id, f"customer{customer_id}.example", covering)


def test_explicit_successor_takes_every_customer() -> None:
    choices = choose_successors(Departure(ALICE, explicit_successor_id=DAN.id), [customer(1), customer(2)], REPS,
                                ["explicit", "manager", "pool"])
    assert [(c.successor_rep_id, c.strategy) for c in choices] == [(DAN.id, "explicit"), (DAN.id, "explicit")]
    assert "named as successor of Alice <alice@corp.example>" == choices[0].reason


def test_co_covering_prefers_the_most_recent_company_mail() -> None:
    history = customer(1, CoveringRep(BOB.id, DAY, 40), CoveringRep(CAROL.id, DAY.replace(day=20), 2))
    [choice] = choose_successors(Departure(ALICE), [history], REPS, ["co_covering", "pool"])
    assert (choice.successor_rep_id, choice.strategy) == (CAROL.id, "co_covering")
    assert "2 company-channel interactions, the latest on 2026-06-20" in choice.reason


def test_co_covering_skips_inactive_reps_and_colleagues() -> None:
    reps = dict(REPS) | {BOB.id: RepProfile(BOB.id, BOB.email, active=False),
                         7: RepProfile(7, "assistant@corp.example", colleague=True)}
    history = customer(1, CoveringRep(BOB.id, DAY, 3), CoveringRep(7, DAY, 3))
    [choice] = choose_successors(Departure(ALICE), [history], reps, ["co_covering", "manager"])
    assert (choice.successor_rep_id, choice.strategy) == (MARY.id, "manager")


def test_manager_when_nobody_else_covers() -> None:
    [choice] = choose_successors(Departure(ALICE), [customer(1)], REPS, ["co_covering", "manager", "pool"])
    assert (choice.successor_rep_id, choice.strategy) == (MARY.id, "manager")
    assert choice.reason == "Mary <mary@corp.example> is the manager of Alice <alice@corp.example>"


def test_round_robin_takes_team_mates_in_turn() -> None:
    choices = choose_successors(Departure(ALICE), [customer(3), customer(1), customer(2)], REPS, ["team_round_robin"])
    assert [(c.customer_id, c.successor_rep_id) for c in choices] == [(1, BOB.id), (2, CAROL.id), (3, BOB.id)]
    assert all(c.strategy == "team_round_robin" for c in choices)


def test_least_loaded_fills_the_emptiest_team_mate_first() -> None:
    choices = choose_successors(Departure(ALICE), [customer(n) for n in range(1, 7)], REPS, ["team_least_loaded"])
    successors = [c.successor_rep_id for c in choices]
    assert successors == [CAROL.id, CAROL.id, CAROL.id, CAROL.id, BOB.id, CAROL.id]
    assert "owns the fewest customers in team east (1 before this one)" in choices[0].reason


def test_pool_when_no_strategy_finds_anyone() -> None:
    loner = RepProfile(5, "loner@corp.example")
    choices = choose_successors(Departure(loner), [customer(1)], {5: loner}, ["co_covering", "manager",
                                                                           "team_round_robin", "pool"])
    assert (choices[0].successor_rep_id, choices[0].strategy) == (None, "pool")
    assert "public pool" in choices[0].reason


def test_pool_is_the_last_resort_even_when_the_policy_omits_it() -> None:
    [choice] = choose_successors(Departure(ALICE, explicit_successor_id=ALICE.id), [customer(1)], REPS, ["explicit"])
    assert (choice.successor_rep_id, choice.strategy) == (None, "pool")


def test_order_decides_between_strategies() -> None:
    history = customer(1, CoveringRep(BOB.id, DAY, 3))
    first = choose_successors(Departure(ALICE), [history], REPS, ["manager", "co_covering"])
    second = choose_successors(Departure(ALICE), [history], REPS, ["co_covering", "manager"])
    assert (first[0].strategy, second[0].strategy) == ("manager", "co_covering")


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown successor strategies: coin_flip"):
        choose_successors(Departure(ALICE), [customer(1)], REPS, ["coin_flip"])


def test_no_cap_lets_the_manager_take_every_customer() -> None:
    choices = choose_successors(Departure(ALICE), [customer(n) for n in range(1, 6)], REPS, ["manager", "pool"])
    assert {c.successor_rep_id for c in choices} == {MARY.id}


def test_manager_at_the_cap_spills_over_to_the_next_strategy_and_says_so() -> None:
    """Mary owns none, Carol 1, Bob 5: with a cap of 3 Mary takes 3, Carol 2, Bob none, the pool one."""
    choices = choose_successors(Departure(ALICE), [customer(n) for n in range(1, 7)], REPS,
                                ["manager", "team_least_loaded", "pool"], max_per_successor=3)
    assert [(c.successor_rep_id, c.strategy) for c in choices] == [
        (MARY.id, "manager"), (MARY.id, "manager"), (MARY.id, "manager"),
        (CAROL.id, "team_least_loaded"), (CAROL.id, "team_least_loaded"), (None, "pool")]
    assert choices[3].reason == ("manager: Mary <mary@corp.example> is at the cap of 3 customers; "
                                 "Carol <carol@corp.example> owns the fewest customers in team east "
                                 "(1 before this one)")
    assert choices[5].reason.startswith("manager: Mary <mary@corp.example> is at the cap of 3 customers; "
                                        "team_least_loaded: every team mate in team east is at the cap of 3 customers; "
                                        "no strategy of the policy found")


def test_the_cap_counts_customers_already_owned() -> None:
    busy = RepProfile(MARY.id, MARY.email, "Mary", owned_customers=3)
    [choice] = choose_successors(Departure(ALICE), [customer(1)], REPS | {MARY.id: busy}, ["manager", "pool"],
                                 max_per_successor=3)
    assert (choice.successor_rep_id, choice.strategy) == (None, "pool")
    assert choice.reason.startswith("manager: Mary <mary@corp.example> is at the cap of 3 customers; ")


def test_round_robin_skips_a_team_mate_at_the_cap() -> None:
    """Bob already owns 5: with a cap of 5 every turn goes to Carol until she holds 5 too."""
    choices = choose_successors(Departure(ALICE), [customer(n) for n in range(1, 7)], REPS,
                                ["team_round_robin", "pool"], max_per_successor=5)
    assert [c.successor_rep_id for c in choices] == [CAROL.id, CAROL.id, CAROL.id, CAROL.id, None, None]
    assert "team_round_robin: every team mate in team east is at the cap of 5 customers" in choices[4].reason


def test_round_robin_keeps_its_turns_under_a_cap_nobody_reaches() -> None:
    capped = choose_successors(Departure(ALICE), [customer(n) for n in range(1, 4)], REPS, ["team_round_robin"],
                               max_per_successor=100)
    assert [c.successor_rep_id for c in capped] == [BOB.id, CAROL.id, BOB.id]


def test_co_covering_passes_over_a_capped_rep_to_the_next_covering_rep() -> None:
    history = customer(1, CoveringRep(BOB.id, DAY.replace(day=20), 4), CoveringRep(CAROL.id, DAY, 2))
    [choice] = choose_successors(Departure(ALICE), [history], REPS, ["co_covering", "pool"], max_per_successor=5)
    assert (choice.successor_rep_id, choice.strategy) == (CAROL.id, "co_covering")
    assert choice.reason.startswith("Bob <bob@corp.example> is at the cap of 5 customers; Carol <carol@corp.example> "
                                    "also covers customer1.example")


def test_co_covering_declines_when_every_covering_rep_is_capped() -> None:
    history = customer(1, CoveringRep(BOB.id, DAY, 4))
    [choice] = choose_successors(Departure(ALICE), [history], REPS, ["co_covering", "manager"], max_per_successor=5)
    assert (choice.successor_rep_id, choice.strategy) == (MARY.id, "manager")
    assert choice.reason == ("co_covering: Bob <bob@corp.example> is at the cap of 5 customers; "
                             "Mary <mary@corp.example> is the manager of Alice <alice@corp.example>")


def test_an_explicit_successor_is_never_capped() -> None:
    choices = choose_successors(Departure(ALICE, explicit_successor_id=BOB.id), [customer(1), customer(2)], REPS,
                                ["explicit", "pool"], max_per_successor=1)
    assert [(c.successor_rep_id, c.strategy) for c in choices] == [(BOB.id, "explicit"), (BOB.id, "explicit")]

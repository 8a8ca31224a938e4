"""Outcomes are values; their words are written in one place."""

from enum import Enum

from chassis.outcomes import DUPLICATE, Outcome, Result


class Status(Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"


def test_each_kind_has_its_words():
    assert str(Outcome.moved(Status.PENDING, Status.APPROVED)) == "applied: PENDING -> APPROVED"
    assert (
        str(Outcome.moved(Status.PENDING, Status.APPROVED, "late approval"))
        == "applied: PENDING -> APPROVED (late approval)"
    )
    assert str(Outcome.done("payment 7 noted (PENDING)")) == "applied: payment 7 noted (PENDING)"
    assert str(Outcome.ignored("payment already REFUNDED")) == "ignored: payment already REFUNDED"
    assert str(DUPLICATE) == "duplicate, already applied"


def test_only_an_applied_outcome_says_it_changed_something():
    assert Outcome.moved(Status.PENDING, Status.APPROVED).applied
    assert Outcome.done("x").applied
    assert not Outcome.ignored("x").applied
    assert not DUPLICATE.applied
    assert [r.value for r in Result] == ["applied", "ignored", "duplicate"]

"""The message bus looks handlers and effects up by type and binds their dependencies once."""

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from chassis.messagebus import MessageBus, UnhandledMessage, batched
from chassis.outcomes import Outcome


@dataclass
class Paid:
    order_id: str


@dataclass
class Refunded:
    order_id: str


def paid(event: Paid, uow: list[str], clock: str) -> Outcome:
    uow.append(f"{event.order_id} paid at {clock}")
    return Outcome.done(event.order_id)


def test_a_message_goes_to_the_handler_of_its_type_with_its_dependencies():
    bus: MessageBus[Any] = MessageBus({Paid: paid}, clock="noon")
    work: list[str] = []
    assert bus.handle(Paid("o-1"), work).applied
    assert work == ["o-1 paid at noon"]
    assert bus.message_types == [Paid]


def test_a_message_without_a_handler_is_refused_not_dropped():
    bus: MessageBus[Any] = MessageBus({Paid: paid}, clock="noon")
    with pytest.raises(UnhandledMessage, match="Refunded"):
        bus.handle(Refunded("o-1"), [])


def test_a_missing_dependency_is_reported_when_the_bus_is_made():
    with pytest.raises(TypeError, match="clock"):
        MessageBus({Paid: paid})


def test_effects_run_by_type_and_a_failing_one_does_not_stop_the_others(caplog):
    seen: list[str] = []

    def broken(event: Paid) -> None:
        raise RuntimeError("provider away")

    def remember(event: Paid, log: list[str]) -> None:
        log.append(event.order_id)

    bus: MessageBus[Any] = MessageBus({}, {Paid: [broken, remember]}, log=seen)
    with caplog.at_level(logging.ERROR):
        bus.after_commit([Paid("o-1"), Refunded("o-2"), Paid("o-3")])
    assert seen == ["o-1", "o-3"]
    assert "broken" in caplog.text and "provider away" in caplog.text


def test_a_batched_handler_gets_each_run_of_its_type_at_once_in_order():
    @batched
    def refunds(events: list[Refunded], uow: list[str]) -> list[Outcome]:
        uow.append("refunds " + ",".join(e.order_id for e in events))
        return [Outcome.ignored(e.order_id) for e in events]

    bus: MessageBus[Any] = MessageBus({Paid: paid, Refunded: refunds}, clock="noon")
    work: list[str] = []
    messages = [Refunded("a"), Refunded("b"), Paid("c"), Refunded("d")]
    outcomes = bus.handle_many(messages, work)
    assert work == ["refunds a,b", "c paid at noon", "refunds d"]
    assert [o.applied for o in outcomes] == [False, False, True, False]
    assert not bus.handle(Refunded("e"), work).applied, "one message: a run of one"
    assert work[-1] == "refunds e"

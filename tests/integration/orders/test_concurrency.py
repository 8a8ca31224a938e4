"""Real concurrent sessions: threads, each with its own unit of work, released together."""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa

from chassis import logs
from chassis.errors import FailedPrecondition, InvalidArgument, NotFound
from chassis.messaging import codec
from orders.domain.model import CartLine, Order, OrderStatus
from orders.service_layer import catalog, ordering
from orders.service_layer.unit_of_work import OrdersUnitOfWork, UowFactory
from tests.integration.orders.helpers import TIMEOUT, check_out, move_to, new_product, scalar
from tests.support.waiting import wait_for

T = TypeVar("T")
S = OrderStatus


def race(*calls: Callable[[], T]) -> list[T | BaseException]:
    """Run the calls in threads released at once by a barrier; results or exceptions, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | BaseException:
        barrier.wait(timeout=10)
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _history_count(engine: sa.Engine, order_id: str, status: OrderStatus) -> Any:
    return scalar(
        engine,
        "SELECT count(*) FROM order_history WHERE order_id = :id AND status = :s",
        id=order_id,
        s=status.value,
    )


def test_two_kitchen_terminals_advancing_the_same_order_one_wins(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    burger = new_product(uow)
    for current, wanted in [
        (S.RECEIVED, S.IN_PREPARATION),
        (S.IN_PREPARATION, S.READY),
        (S.READY, S.COMPLETED),
    ]:
        for _ in range(5):  # several rounds: the race must hold whichever thread gets there first
            order = move_to(uow, check_out(uow, [burger]).id, current)
            advance = partial(ordering.advance, uow, order.id, wanted)
            results = race(advance, advance)
            won = [r for r in results if isinstance(r, Order)]
            lost = [r for r in results if not isinstance(r, Order)]
            assert len(won) == 1 and len(lost) == 1, (
                f"expected one winner and one loser, got {results!r}"
            )
            error = lost[0]
            assert isinstance(error, FailedPrecondition), (
                f"the loser should get FailedPrecondition, got {error!r}"
            )
            assert wanted.value in error.message and error.current == wanted.value, (
                f"the loser's error should name the current and requested status {wanted.value}: "
                f"{error.message!r}"
            )
            assert won[0].status is wanted
            final = ordering.get(uow, order.id)
            assert final.status is wanted, f"expected {wanted.value}, stored {final.status.value}"
            assert _history_count(orders_engine, order.id, wanted) == 1, (
                f"history must have exactly one {wanted.value} entry"
            )
            assert [h.status for h in final.history][-2:] == [current, wanted], (
                "nothing skipped or repeated"
            )


def test_a_terminal_that_waited_for_the_row_lock_sees_the_full_history(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    """Terminal A holds the row (IN_PREPARATION), terminal B waits for it to ask READY: B's
    answer must include A's step, which committed while B was waiting."""
    order = move_to(uow, check_out(uow).id, S.RECEIVED)
    with OrdersUnitOfWork(orders_engine) as unit_a:
        held = unit_a.orders.get(order.id, for_update=True)
        assert held is not None
        with ThreadPoolExecutor(1) as pool:
            b = pool.submit(ordering.advance, uow, order.id, S.READY)
            wait_for(
                lambda: (
                    scalar(
                        orders_engine,
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    )
                    == 1
                ),
                timeout=10,
                what="terminal B to wait for the order's row lock",
            )
            held.advance(S.IN_PREPARATION)
            unit_a.orders.save(held)
            unit_a.commit()
            result = b.result(timeout=10)
    statuses = [h.status for h in result.history]
    assert statuses == [S.PENDING_PAYMENT, S.RECEIVED, S.IN_PREPARATION, S.READY], (
        f"terminal B's answer should show every step, got {[s.value for s in statuses]}"
    )
    stored = [h.status for h in ordering.get(uow, order.id).history]
    assert stored == statuses, f"stored history {stored} differs from the answer {statuses}"


def test_cancel_racing_the_kitchen_ends_in_one_consistent_state(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    burger = new_product(uow)
    for _ in range(5):
        order = move_to(uow, check_out(uow, [burger]).id, S.RECEIVED)
        results = race(
            partial(ordering.advance, uow, order.id, S.IN_PREPARATION),
            partial(ordering.cancel, uow, order.id, "changed my mind", by_staff=False),
        )
        won = [r for r in results if isinstance(r, Order)]
        assert len(won) == 1 and any(isinstance(r, FailedPrecondition) for r in results), results
        final = ordering.get(uow, order.id)
        assert final.status is won[0].status, (
            f"stored {final.status.value}, winner said {won[0].status.value}"
        )
        assert [h.status for h in final.history] == [S.PENDING_PAYMENT, S.RECEIVED, final.status]
        events = scalar(
            orders_engine, "SELECT count(*) FROM outbox WHERE order_id = :id", id=order.id
        )
        # OrderCreated, OrderStatusChanged(RECEIVED), and the winner's event
        assert events == 3, f"expected 3 outbox rows, found {events}"


def test_identical_checkouts_at_once_make_one_order(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    burger = new_product(uow)
    cart = [CartLine(burger.id, 2, "sem cebola")]
    for _ in range(5):
        request_id = f"kiosk-1:{uuid.uuid4()}"
        retry = partial(ordering.check_out, uow, request_id, "", cart, TIMEOUT)
        results = race(retry, retry, retry, retry)
        errors = [r for r in results if not isinstance(r, Order)]
        assert not errors, f"every retry should get the order, got errors {errors!r}"
        ids = {r.id for r in results if isinstance(r, Order)}
        assert len(ids) == 1, f"expected every caller to get the same order id, got {ids}"
        rows = scalar(
            orders_engine, "SELECT count(*) FROM orders WHERE request_id = :r", r=request_id
        )
        assert rows == 1, f"expected one order row for the request id, found {rows}"
        (order_id,) = ids
        created = scalar(
            orders_engine, "SELECT count(*) FROM outbox WHERE order_id = :id", id=order_id
        )
        assert created == 1, f"expected one OrderCreated in the outbox, found {created}"
        items = scalar(
            orders_engine, "SELECT count(*) FROM order_items WHERE order_id = :id", id=order_id
        )
        assert items == 1, f"expected the order's single line once, found {items}"
        numbers = {r.number for r in results if isinstance(r, Order)}
        assert len(numbers) == 1 and numbers != {0}, (
            f"all callers should see the stored number: {numbers}"
        )


def test_retry_after_the_first_checkout_returns_the_same_order(uow: UowFactory) -> None:
    burger = new_product(uow)
    first = ordering.check_out(uow, "retry-1", "", [CartLine(burger.id, 1, "")], TIMEOUT)
    again = ordering.check_out(uow, "retry-1", "", [CartLine(burger.id, 1, "")], TIMEOUT)
    assert (again.id, again.number, again.total_centavos) == (
        first.id,
        first.number,
        first.total_centavos,
    )


def test_many_concurrent_checkouts_get_distinct_increasing_numbers(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    burger = new_product(uow)
    before = check_out(uow, [burger])
    results = race(*[lambda: check_out(uow, [burger]) for _ in range(16)])
    orders = [r for r in results if isinstance(r, Order)]
    assert len(orders) == 16, (
        f"every checkout should succeed: {[r for r in results if not isinstance(r, Order)]}"
    )
    numbers = [o.number for o in orders]
    assert len(set(numbers)) == 16, f"numbers must be distinct: {sorted(numbers)}"
    assert min(numbers) > before.number, (
        f"numbers must grow: {before.number} then {sorted(numbers)}"
    )
    after = check_out(uow, [burger])
    assert after.number > max(numbers), (
        f"a later order gets a larger number: {after.number} vs {max(numbers)}"
    )
    stored = scalar(orders_engine, "SELECT count(DISTINCT number) FROM orders")
    assert stored == 18


def test_timeout_sweeps_in_two_replicas_cancel_each_order_once(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    burger = new_product(uow)
    overdue = [check_out(uow, [burger], timeout=timedelta(seconds=-5)) for _ in range(10)]
    counts = race(
        lambda: ordering.time_out_overdue(uow, batch=5),
        lambda: ordering.time_out_overdue(uow, batch=5),
        lambda: ordering.time_out_overdue(uow, batch=5),
    )
    assert all(isinstance(c, int) for c in counts), counts
    total = sum(c for c in counts if isinstance(c, int))
    left = ordering.time_out_overdue(uow)
    assert total + left == 10, f"each overdue order is cancelled once: {counts} then {left}"
    for order in overdue:
        assert _history_count(orders_engine, order.id, S.CANCELLED) == 1


def test_checkouts_written_together_each_get_their_own_answer(uow: UowFactory) -> None:
    """One batch: new orders, an invalid cart, a retry of an earlier checkout (whose product
    was archived since) and an unknown CPF; one transaction, each its own result."""
    burger = new_product(uow)
    earlier = check_out(uow, [burger], request_id="earlier")
    catalog.archive(uow, burger.id)
    fries = new_product(uow, "Batata", 1290)
    commands = [
        ordering.checkout_command("new-1", "", [CartLine(fries.id, 2, "")]),
        ordering.checkout_command("archived", "", [CartLine(burger.id, 1, "")]),
        ordering.checkout_command("earlier", "", [CartLine(burger.id, 1, "")]),
        ordering.checkout_command("unknown-cpf", "529.982.247-25", [CartLine(fries.id, 1, "")]),
        ordering.checkout_command("new-2", "", [CartLine(fries.id, 1, "")]),
    ]
    results = ordering.check_out_many(uow, commands, TIMEOUT)
    new_1, archived, retry, unknown, new_2 = results
    assert isinstance(new_1, Order) and new_1.total_centavos == 2580
    assert isinstance(new_2, Order) and new_2.number != new_1.number
    assert isinstance(archived, InvalidArgument) and archived.field == "items[0].product_id"
    assert isinstance(retry, Order) and retry.id == earlier.id, "a retry gets its order"
    assert isinstance(unknown, InvalidArgument) and unknown.field == "customer_cpf"
    again = ordering.check_out_many(uow, commands[:1], TIMEOUT)
    assert isinstance(again[0], Order) and again[0].id == new_1.id, "idempotent"
    assert ordering.get(uow, new_2.id).items[0].quantity == 1


def test_checkouts_written_together_keep_each_callers_request_id_and_actor(
    uow: UowFactory,
) -> None:
    """The batch is written by one thread for every caller: each OrderCreated still carries
    its own caller's request id and, for a staff caller, its actor (not the first caller's)."""
    fries = new_product(uow, "Batata", 1290)
    callers = [("req-anon-1", ""), ("req-staff", "staff-7"), ("req-anon-2", "")]
    commands = []
    for request_id, actor in callers:
        context = contextvars.copy_context()
        context.run(logs.request_id_var.set, request_id)
        context.run(logs.actor_var.set, actor)
        cart = [CartLine(fries.id, 1, "")]
        commands.append(context.run(ordering.checkout_command, request_id, "", cart))
    orders = ordering.check_out_many(uow, commands, TIMEOUT)
    with uow().reading() as unit:
        for (request_id, actor), order in zip(callers, orders, strict=True):
            assert isinstance(order, Order)
            headers = unit.connection.execute(
                sa.text(
                    "SELECT headers FROM outbox WHERE order_id = :id "
                    "AND event_type = 'comanda.events.v1.OrderCreated'"
                ),
                {"id": order.id},
            ).scalar_one()
            assert headers.get(codec.REQUEST_ID_HEADER) == request_id, headers
            assert headers.get(codec.ACTOR_HEADER, "") == actor, headers


def test_orders_read_together_each_get_their_own_answer(uow: UowFactory) -> None:
    """Concurrent GetOrder calls read in one query: each its order, or NOT_FOUND for its id."""
    first, second = check_out(uow), check_out(uow)
    missing = str(uuid.uuid4())
    results = ordering.get_each(uow, [second.id, missing, first.id, second.id])
    assert [r.id if isinstance(r, Order) else None for r in results] == [
        second.id,
        None,
        first.id,
        second.id,
    ]
    assert isinstance(results[1], NotFound) and results[1].resource_id == missing

"""Use cases of orders: checkout, read, list, cancel, the kitchen's steps, timeouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from chassis import pagination
from chassis.batching import first_of
from chassis.db import Origin
from chassis.errors import InvalidArgument, NotFound
from chassis.messaging import timeline
from chassis.validation import validate_text, validate_uuid
from orders.domain import cpf
from orders.domain.model import (
    MAX_REASON,
    Actor,
    CartLine,
    Order,
    OrderStatus,
    validate_cart,
    validate_request_id,
)
from orders.service_layer.unit_of_work import UowFactory

ORDER_KEY = pagination.Keyset(pagination.timestamp, pagination.uuid_text)  # newest first


@dataclass(frozen=True)
class CheckOut:
    """A checkout, its input validated (`checkout_command`)."""

    request_id: str
    customer_cpf: str | None  # digits only
    cart: list[CartLine]
    # The caller's request id and actor, for the events' headers (the batch is written by
    # one thread for many callers).
    origin: Origin


def checkout_command(request_id: str, customer_cpf: str, cart: list[CartLine]) -> CheckOut:
    """Validate a checkout's input (INVALID_ARGUMENT naming the field)."""
    return CheckOut(
        validate_request_id(request_id),
        cpf.normalize(customer_cpf, "customer_cpf") if customer_cpf.strip() else None,
        validate_cart(cart),
        Origin.current(),
    )


def check_out(
    uow_factory: UowFactory,
    request_id: str,
    customer_cpf: str,
    cart: list[CartLine],
    payment_timeout: timedelta,
) -> Order:
    """Create the order, or return the one this request id already created."""
    command = checkout_command(request_id, customer_cpf, cart)
    order: Order = first_of(check_out_many(uow_factory, [command], payment_timeout))
    return order


def check_out_many(
    uow_factory: UowFactory, commands: Sequence[CheckOut], payment_timeout: timedelta
) -> list[Order | Exception]:
    """Checkouts with distinct request ids, written together: one transaction, one statement
    for every new order. Each gets its order (the one its request id created before, for a
    retry), or its own error."""
    results: list[Order | Exception | None] = [None] * len(commands)
    with uow_factory() as uow:
        cpfs = {c.customer_cpf for c in commands if c.customer_cpf}
        customer_ids = uow.customers.ids_by_cpf(cpfs) if cpfs else {}
        catalogue, numbers = uow.orders.checkout_catalogue(
            {line.product_id for c in commands for line in c.cart}, len(commands)
        )
        new: list[Order] = []
        for i, command in enumerate(commands):
            try:
                customer_id = None
                if command.customer_cpf is not None:
                    customer_id = customer_ids.get(command.customer_cpf)
                    if customer_id is None:
                        raise InvalidArgument(
                            "customer_cpf", "no customer is registered with this CPF"
                        )
                order = Order.check_out(
                    command.request_id,
                    customer_id,
                    command.cart,
                    catalogue,
                    payment_timeout,
                    numbers[i],
                )
            except InvalidArgument as exc:
                results[i] = exc
                continue
            uow.origins[order.id] = command.origin  # in OrderCreated's headers
            order.record_created()
            new.append(order)
            results[i] = order
        written = uow.orders.add_many(new) if new else set()
        uow.commit()
    # A retry gets the order its request id created before, even if the product was archived
    # (or the customer erased) since; a request id taken meanwhile, the order that took it.
    again = [
        c.request_id
        for c, result in zip(commands, results, strict=True)
        if isinstance(result, InvalidArgument)
        or (isinstance(result, Order) and result.id not in written)
    ]
    if again:
        with uow_factory().reading() as uow:
            existing = uow.orders.by_request_ids(again)
        for i, command in enumerate(commands):
            result = results[i]
            if command.request_id in existing:
                results[i] = existing[command.request_id]
            elif isinstance(result, Order) and result.id not in written:
                results[i] = AssertionError("a conflicting insert implies a committed order")
    return cast(list[Order | Exception], results)  # every slot was filled above


def get(uow_factory: UowFactory, order_id: str) -> Order:
    order_id = validate_uuid(order_id, "order_id")
    with uow_factory().reading() as uow:
        order = uow.orders.get(order_id)
    if order is None:
        raise NotFound("order", order_id)
    return order


def get_each(uow_factory: UowFactory, order_ids: Sequence[str]) -> list[Order | Exception]:
    """Each order of valid ids, in one read: the order, or NOT_FOUND naming its id (concurrent
    GetOrder calls read together)."""
    found = {order.id: order for order in get_many(uow_factory, list(set(order_ids)))}
    return [found.get(order_id) or NotFound("order", order_id) for order_id in order_ids]


def get_many(uow_factory: UowFactory, order_ids: list[str]) -> list[Order]:
    """The orders of these ids that exist, in one read."""
    with uow_factory().reading() as uow:
        return uow.orders.get_many(order_ids)


def list_orders(
    uow_factory: UowFactory,
    status: OrderStatus | None,
    customer_id: str,
    created_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
    page_token: str,
) -> tuple[list[Order], str]:
    size = pagination.page_size(page_size)
    after = ORDER_KEY.after(page_token)
    customer = validate_uuid(customer_id, "customer_id") if customer_id else None
    if created_after and created_before and created_after >= created_before:
        raise InvalidArgument("created_before", "must be later than created_after")
    with uow_factory().reading() as uow:
        found = uow.orders.search(status, customer, created_after, created_before, after, size + 1)
    return ORDER_KEY.page(found, size, lambda o: [o.created_at.isoformat(), o.id])


def cancel(
    uow_factory: UowFactory, order_id: str, reason: str, by_staff: bool, actor_subject: str = ""
) -> Order:
    """A customer's or (`by_staff`, `actor_subject` naming who) a staff cancellation."""
    order_id = validate_uuid(order_id, "order_id")
    reason = validate_text(reason, "reason", MAX_REASON, required=False)
    actor = Actor.STAFF if by_staff else Actor.CUSTOMER
    with uow_factory() as uow:
        order = uow.orders.get(order_id, for_update=True)
        if order is None:
            raise NotFound("order", order_id)
        order.cancel(
            actor, reason or f"cancelled by {actor.value.lower()}", actor_subject=actor_subject
        )
        uow.orders.save(order)
        uow.commit()
    return order


def advance(
    uow_factory: UowFactory, order_id: str, status: OrderStatus | None, actor_subject: str = ""
) -> Order:
    """A kitchen step taken by `actor_subject`. The row lock serialises two terminals: the
    second sees the new status."""
    order_id = validate_uuid(order_id, "order_id")
    if status is None:
        raise InvalidArgument("status", "is required: IN_PREPARATION, READY or COMPLETED")
    with uow_factory() as uow:
        order = uow.orders.get(order_id, for_update=True)
        if order is None:
            raise NotFound("order", order_id)
        order.advance(status, actor_subject=actor_subject)
        uow.orders.save(order)
        uow.commit()
    return order


def kitchen_queue(uow_factory: UowFactory, page_size: int) -> list[Order]:
    size = pagination.page_size(page_size, default=100, maximum=500)
    with uow_factory().reading() as uow:
        return uow.orders.kitchen_queue(size)


def order_timeline(uow_factory: UowFactory, order_id: str) -> list[timeline.TimelineEntry]:
    order_id = validate_uuid(order_id, "order_id")
    with uow_factory().reading() as uow:
        if uow.orders.id_for_order(order_id) is None:
            raise NotFound("order", order_id)
        return timeline.for_aggregate(uow.connection, order_id)


def time_out_overdue(uow_factory: UowFactory, batch: int = 100) -> int:
    """Cancel PENDING_PAYMENT orders past their deadline (any replica; rows are skip-locked)."""
    with uow_factory() as uow:
        count = 0
        overdue = uow.orders.overdue(batch)
        uow.orders.lock(overdue)  # already locked: this reads them all in one statement
        for order_id in overdue:
            order = uow.orders.get(order_id, for_update=True)
            if order is not None and order.time_out().applied:
                uow.orders.save(order)
                count += 1
        uow.commit()
    return count

"""Domain objects to protobuf messages of comanda.orders.v1."""

from __future__ import annotations

from datetime import datetime, timedelta

from google.protobuf import duration_pb2

from chassis.messaging.timeline import TimelineEntry
from chassis.protomap import enum_to_proto, timestamp
from comanda.orders.v1 import catalog_pb2, customers_pb2, orders_pb2
from comanda.payment.v1 import payment_pb2
from orders.domain.model import KITCHEN_QUEUE, Customer, Order, Product


def customer(c: Customer) -> customers_pb2.Customer:
    return customers_pb2.Customer(
        id=c.id,
        cpf=c.cpf or "",
        name=c.name,
        email=c.email,
        create_time=timestamp(c.created_at),
        erase_time=timestamp(c.erased_at),
    )


def product(p: Product) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=p.id,
        name=p.name,
        description=p.description,
        category=enum_to_proto(catalog_pb2.Category, p.category),
        price_centavos=p.price_centavos,
        preparation_seconds=p.preparation_seconds,
        active=p.active,
        create_time=timestamp(p.created_at),
        update_time=timestamp(p.updated_at),
    )


def order(o: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        id=o.id,
        number=o.number,
        customer_id=o.customer_id or "",
        items=[
            orders_pb2.OrderItem(
                product_id=i.product_id,
                name=i.name,
                category=enum_to_proto(catalog_pb2.Category, i.category),
                unit_price_centavos=i.unit_price_centavos,
                quantity=i.quantity,
                notes=i.notes,
                subtotal_centavos=i.subtotal_centavos,
            )
            for i in o.items
        ],
        total_centavos=o.total_centavos,
        status=enum_to_proto(orders_pb2.OrderStatus, o.status),
        payment_status=enum_to_proto(payment_pb2.PaymentStatus, o.payment_status),
        history=[
            orders_pb2.StatusChange(
                status=enum_to_proto(orders_pb2.OrderStatus, h.status),
                actor=enum_to_proto(orders_pb2.Actor, h.actor),
                reason=h.reason,
                actor_subject=h.actor_subject,
                time=timestamp(h.time),
            )
            for h in o.history
        ],
        request_id=o.request_id,
        create_time=timestamp(o.created_at),
        update_time=timestamp(o.updated_at),
        payment_deadline=timestamp(o.payment_deadline),
        payment_id=o.payment_id or "",
        status_time=timestamp(o.status_time),
        receive_time=timestamp(o.receive_time),
    )


def kitchen_wait(o: Order, now: datetime) -> orders_pb2.KitchenWait:
    """How long an order of the kitchen queue has waited, up to `now`."""
    return orders_pb2.KitchenWait(
        order_id=o.id,
        waiting=_duration(now - (o.receive_time or o.status_time)),
        status_waiting=_duration(now - o.status_time),
    )


def kitchen_waits(orders: list[Order], now: datetime) -> list[orders_pb2.KitchenWait]:
    """One wait per order still in the queue, in the same order."""
    return [kitchen_wait(o, now) for o in orders if o.status in KITCHEN_QUEUE]


def board_entry(o: Order) -> orders_pb2.OrderBoardEntry:
    """The public board's view of an order: its number and status, nothing else."""
    return orders_pb2.OrderBoardEntry(
        number=o.number,
        status=enum_to_proto(orders_pb2.OrderStatus, o.status),
        status_time=timestamp(o.status_time),
    )


def _duration(delta: timedelta) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(max(delta, timedelta(0)))  # clocks of two replicas may differ a little
    return value


def timeline(order_id: str, entries: list[TimelineEntry]) -> orders_pb2.OrderTimeline:
    return orders_pb2.OrderTimeline(
        order_id=order_id,
        entries=[
            orders_pb2.TimelineEntry(
                event_id=e.event_id,
                event_type=e.event_type,
                subject=e.subject,
                direction=orders_pb2.DIRECTION_EMITTED
                if e.emitted
                else orders_pb2.DIRECTION_CONSUMED,
                time=timestamp(e.time),
                outcome=e.outcome,
                publish_time=timestamp(e.publish_time),
                actor_subject=e.actor,
            )
            for e in entries
        ],
    )

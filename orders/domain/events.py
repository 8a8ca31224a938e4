"""Events of orders: those the orders service publishes (comanda.events.v1, by name), and
`OrderChanged`, which it keeps to itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chassis.events import DomainEvent, LocalEvent
from orders.domain.values import Actor, Category, OrderStatus


@dataclass
class OrderLine:
    product_id: str
    name: str
    category: Category
    unit_price_centavos: int
    quantity: int


@dataclass(kw_only=True)
class OrderEvent(DomainEvent):
    order_id: str  # the aggregate's id (the codec's aggregate field)


@dataclass(kw_only=True)
class OrderCreated(OrderEvent):
    order_number: int
    customer_id: str
    total_centavos: int
    items: list[OrderLine] = field(default_factory=list)
    payment_deadline: datetime | None = None


@dataclass(kw_only=True)
class OrderStatusChanged(OrderEvent):
    from_status: OrderStatus
    to_status: OrderStatus
    actor: Actor


@dataclass(kw_only=True)
class OrderCancelled(OrderEvent):
    from_status: OrderStatus
    actor: Actor
    reason: str


@dataclass(kw_only=True, slots=True)
class OrderChanged(LocalEvent):
    """Something a watcher of the order can see changed: its status, or its payment's id or
    status. Recorded once per change and never published: after the commit it is the one hook
    for whatever follows any change of an order (`orders.service_layer.handlers.EFFECTS`)."""

    order_id: str
    status: OrderStatus
    entered: OrderStatus | None  # the status this change moved the order to, if it moved
    checked_out_at: datetime
    time: datetime

"""Events the orders service publishes (comanda.events.v1, by name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chassis.events import DomainEvent
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

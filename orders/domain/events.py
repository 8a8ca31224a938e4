"""Events the orders service emits (comanda.events.v1, by name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chassis.events import DomainEvent
from orders.domain.values import Actor, Category, OrderStatus

__all__ = ["DomainEvent", "OrderCancelled", "OrderCreated", "OrderLine", "OrderStatusChanged"]


@dataclass
class OrderLine:
    product_id: str
    name: str
    category: Category
    unit_price_centavos: int
    quantity: int


@dataclass(kw_only=True)
class OrderCreated(DomainEvent):
    order_number: int
    customer_id: str
    total_centavos: int
    items: list[OrderLine] = field(default_factory=list)
    payment_deadline: datetime | None = None


@dataclass(kw_only=True)
class OrderStatusChanged(DomainEvent):
    from_status: OrderStatus
    to_status: OrderStatus
    actor: Actor


@dataclass(kw_only=True)
class OrderCancelled(DomainEvent):
    from_status: OrderStatus
    actor: Actor
    reason: str

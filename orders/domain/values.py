"""The values of the orders domain that its model and its events share: product categories,
order and payment statuses, and who caused a change."""

from __future__ import annotations

from enum import Enum


class Category(Enum):
    BURGER = "BURGER"
    SIDE = "SIDE"
    DRINK = "DRINK"
    DESSERT = "DESSERT"


class OrderStatus(Enum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    RECEIVED = "RECEIVED"
    IN_PREPARATION = "IN_PREPARATION"
    READY = "READY"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class PaymentStatus(Enum):
    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"


class Actor(Enum):
    CUSTOMER = "CUSTOMER"
    KITCHEN = "KITCHEN"
    PAYMENT = "PAYMENT"
    TIMEOUT = "TIMEOUT"
    STAFF = "STAFF"

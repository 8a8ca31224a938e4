"""The orders domain: customers, products, orders and the order state machine.

Pure Python: no gRPC, SQL or NATS. Every rule that can reject input raises a chassis domain
error naming the field or the states involved.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from chassis.errors import FailedPrecondition, InvalidArgument
from chassis.events import Aggregate, utcnow
from chassis.outcomes import Outcome
from chassis.validation import validate_text, validate_uuid
from orders.domain import events

# Re-exported: the model is where callers find every type of the domain.
from orders.domain.values import Actor as Actor
from orders.domain.values import Category as Category
from orders.domain.values import OrderStatus as OrderStatus
from orders.domain.values import PaymentStatus as PaymentStatus

MAX_LINES = 50
MAX_QUANTITY = 99
MAX_NOTES = 140
MAX_NAME = 80
MAX_DESCRIPTION = 500
MAX_REASON = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


KITCHEN_STEPS = {
    OrderStatus.RECEIVED: OrderStatus.IN_PREPARATION,
    OrderStatus.IN_PREPARATION: OrderStatus.READY,
    OrderStatus.READY: OrderStatus.COMPLETED,
}
CANCELLABLE = (OrderStatus.PENDING_PAYMENT, OrderStatus.RECEIVED)
TERMINAL = (OrderStatus.COMPLETED, OrderStatus.CANCELLED)
KITCHEN_QUEUE = (OrderStatus.READY, OrderStatus.IN_PREPARATION, OrderStatus.RECEIVED)
# How far along the payment is: a status never moves back to a lower rank.
_PAYMENT_RANK = {
    PaymentStatus.UNSPECIFIED: 0,
    PaymentStatus.PENDING: 1,
    PaymentStatus.APPROVED: 2,
    PaymentStatus.DECLINED: 2,
    PaymentStatus.EXPIRED: 2,
    PaymentStatus.CANCELLED: 2,
    PaymentStatus.REFUNDED: 3,
}


def kitchen_order(order: Order) -> tuple[int, datetime, str]:
    """The kitchen queue's order: READY, then IN_PREPARATION, then RECEIVED; oldest first."""
    return KITCHEN_QUEUE.index(order.status), order.created_at, order.id


def validate_email(value: str, field: str = "email") -> str:
    value = value.strip()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidArgument(field, "is not a valid e-mail address")
    return value.lower()


def validate_request_id(value: str, field: str = "request_id") -> str:
    if not _REQUEST_ID.fullmatch(value):  # match() would let a trailing newline through `$`
        raise InvalidArgument(field, "is required: 1..64 characters of letters, digits and . _ : -")
    return value


@dataclass
class Customer:
    id: str
    cpf: str | None
    name: str
    email: str
    created_at: datetime
    erased_at: datetime | None = None

    @classmethod
    def register(cls, cpf: str, name: str, email: str) -> Customer:
        return cls(
            str(uuid.uuid4()),
            cpf,
            validate_text(name, "name", 120),
            validate_email(email),
            utcnow(),
        )

    def erase(self) -> None:
        """LGPD: personal data gone for good; the id stays so past orders still add up."""
        self.cpf, self.name, self.email = None, "", ""
        self.erased_at = self.erased_at or utcnow()


@dataclass
class Product:
    id: str
    name: str
    description: str
    category: Category
    price_centavos: int
    preparation_seconds: int
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def create(
        cls,
        name: str,
        description: str,
        category: Category | None,
        price_centavos: int,
        preparation_seconds: int,
    ) -> Product:
        now = utcnow()
        product = cls(
            str(uuid.uuid4()),
            name,
            description,
            Category.BURGER,
            price_centavos,
            preparation_seconds,
            True,
            now,
            now,
        )
        product.change(
            name=name,
            description=description,
            category=category,
            price_centavos=price_centavos,
            preparation_seconds=preparation_seconds,
        )
        return product

    def change(self, **fields: object) -> None:
        """Apply and validate the given fields (as named in the API)."""
        for name, value in fields.items():
            if name == "name":
                self.name = validate_text(str(value), "product.name", MAX_NAME)
            elif name == "description":
                self.description = validate_text(
                    str(value), "product.description", MAX_DESCRIPTION, False
                )
            elif name == "category":
                if not isinstance(value, Category):
                    raise InvalidArgument(
                        "product.category", "must be BURGER, SIDE, DRINK or DESSERT"
                    )
                self.category = value
            elif name == "price_centavos":
                if not isinstance(value, int) or not 0 < value <= 100_000_00:
                    raise InvalidArgument("product.price_centavos", "must be 1..10000000 centavos")
                self.price_centavos = value
            elif name == "preparation_seconds":
                if not isinstance(value, int) or not 0 <= value <= 7200:
                    raise InvalidArgument("product.preparation_seconds", "must be 0..7200")
                self.preparation_seconds = value
            elif name == "active":
                self.active = bool(value)
            else:
                raise InvalidArgument("update_mask", f"{name!r} cannot be updated")
        self.updated_at = utcnow()


@dataclass(frozen=True)
class CartLine:
    product_id: str
    quantity: int
    notes: str


@dataclass
class OrderItem:
    product_id: str
    name: str
    category: Category
    unit_price_centavos: int
    quantity: int
    notes: str

    @property
    def subtotal_centavos(self) -> int:
        return self.unit_price_centavos * self.quantity


@dataclass
class StatusChange:
    status: OrderStatus
    actor: Actor
    reason: str
    time: datetime
    actor_subject: str = ""  # the staff member (their token's `sub`), for a staff action


def validate_cart(lines: list[CartLine]) -> list[CartLine]:
    if not lines:
        raise InvalidArgument("items", "the cart is empty: add at least one item")
    if len(lines) > MAX_LINES:
        raise InvalidArgument("items", f"at most {MAX_LINES} lines per order ({len(lines)} given)")
    clean = []
    for i, line in enumerate(lines):
        product_id = validate_uuid(line.product_id, f"items[{i}].product_id")
        if not 1 <= line.quantity <= MAX_QUANTITY:
            raise InvalidArgument(
                f"items[{i}].quantity", f"must be 1..{MAX_QUANTITY} ({line.quantity} given)"
            )
        notes = validate_text(line.notes, f"items[{i}].notes", MAX_NOTES, required=False)
        clean.append(CartLine(product_id, line.quantity, notes))
    return clean


@dataclass(eq=False)
class Order(Aggregate):
    id: str
    number: int
    customer_id: str | None
    request_id: str
    items: list[OrderItem]
    status: OrderStatus
    payment_status: PaymentStatus
    payment_id: str | None
    payment_deadline: datetime | None
    history: list[StatusChange]
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        Aggregate.__init__(self)

    @property
    def total_centavos(self) -> int:
        return sum(item.subtotal_centavos for item in self.items)

    @property
    def status_time(self) -> datetime:
        """When the order entered its current status."""
        return self.history[-1].time if self.history else self.created_at

    @property
    def receive_time(self) -> datetime | None:
        """When it was paid and entered the kitchen queue; None before."""
        return next((h.time for h in self.history if h.status is OrderStatus.RECEIVED), None)

    @classmethod
    def check_out(
        cls,
        request_id: str,
        customer_id: str | None,
        cart: list[CartLine],
        catalogue: dict[str, Product],
        payment_timeout: timedelta,
        number: int = 0,
    ) -> Order:
        """A new order, PENDING_PAYMENT, priced from the catalogue (never from the client);
        `number` is its pickup number, drawn by the database."""
        items = []
        for i, line in enumerate(cart):
            product = catalogue.get(line.product_id)
            if product is None:
                raise InvalidArgument(
                    f"items[{i}].product_id", f"product {line.product_id} does not exist"
                )
            if not product.active:
                raise InvalidArgument(
                    f"items[{i}].product_id",
                    f"product {line.product_id} ({product.name}) is archived",
                )
            items.append(
                OrderItem(
                    product.id,
                    product.name,
                    product.category,
                    product.price_centavos,
                    line.quantity,
                    line.notes,
                )
            )
        now = utcnow()
        order = cls(
            str(uuid.uuid4()),
            number,
            customer_id,
            request_id,
            items,
            OrderStatus.PENDING_PAYMENT,
            PaymentStatus.UNSPECIFIED,
            None,
            now + payment_timeout,
            [StatusChange(OrderStatus.PENDING_PAYMENT, Actor.CUSTOMER, "checked out", now)],
            now,
            now,
        )
        return order

    def record_created(self) -> None:
        """Record OrderCreated once the order has its number (assigned by the database)."""
        self.record(
            events.OrderCreated(
                order_id=self.id,
                order_number=self.number,
                customer_id=self.customer_id or "",
                total_centavos=self.total_centavos,
                payment_deadline=self.payment_deadline,
                items=[
                    events.OrderLine(
                        i.product_id, i.name, i.category, i.unit_price_centavos, i.quantity
                    )
                    for i in self.items
                ],
            )
        )
        self._changed(OrderStatus.PENDING_PAYMENT)

    def _changed(self, entered: OrderStatus | None = None) -> None:
        self.record(
            events.OrderChanged(
                order_id=self.id,
                status=self.status,
                entered=entered,
                checked_out_at=self.created_at,
                time=self.updated_at,
            )
        )

    def _move(
        self,
        to: OrderStatus,
        actor: Actor,
        reason: str,
        causation_id: str = "",
        actor_subject: str = "",
    ) -> None:
        before = self.status
        self.status = to
        self.updated_at = utcnow()
        self.history.append(StatusChange(to, actor, reason, self.updated_at, actor_subject))
        if to is not OrderStatus.PENDING_PAYMENT:
            self.payment_deadline = None
        if to is OrderStatus.CANCELLED:
            self.record(
                events.OrderCancelled(
                    order_id=self.id,
                    causation_id=causation_id,
                    from_status=before,
                    actor=actor,
                    reason=reason,
                )
            )
        else:
            self.record(
                events.OrderStatusChanged(
                    order_id=self.id,
                    causation_id=causation_id,
                    from_status=before,
                    to_status=to,
                    actor=actor,
                )
            )
        self._changed(to)

    def advance(
        self, to: OrderStatus, actor: Actor = Actor.KITCHEN, actor_subject: str = ""
    ) -> None:
        """A kitchen step: only the next status after the current one; `actor_subject` is the
        staff member who took it."""
        if KITCHEN_STEPS.get(self.status) is not to:
            nxt = KITCHEN_STEPS.get(self.status)
            hint = f"the next step is {nxt.value}" if nxt else "the kitchen has no step from here"
            raise FailedPrecondition(
                f"order {self.id}", self.status.value, f"move to {to.value}", hint
            )
        self._move(
            to,
            actor,
            {
                OrderStatus.IN_PREPARATION: "preparation started",
                OrderStatus.READY: "ready for pickup",
                OrderStatus.COMPLETED: "picked up",
            }[to],
            actor_subject=actor_subject,
        )

    def cancel(
        self, actor: Actor, reason: str, causation_id: str = "", actor_subject: str = ""
    ) -> None:
        if self.status not in CANCELLABLE:
            raise FailedPrecondition(
                f"order {self.id}",
                self.status.value,
                "cancel",
                "only PENDING_PAYMENT and RECEIVED orders can be cancelled",
            )
        self._move(OrderStatus.CANCELLED, actor, reason, causation_id, actor_subject)

    def note_payment(self, status: PaymentStatus, payment_id: str) -> Outcome:
        """Remember what the payment service said; never move back."""
        if not self._note(status, payment_id):
            return Outcome.ignored(f"payment already {self.payment_status.value}")
        self._changed()
        return Outcome.done(f"payment {payment_id} noted ({self.payment_status.value})")

    def _note(self, status: PaymentStatus, payment_id: str) -> bool:
        """Take the payment's id and a status further along; True if either changed."""
        changed = False
        if payment_id and not self.payment_id:
            self.payment_id = payment_id
            changed = True
        if _PAYMENT_RANK[status] > _PAYMENT_RANK[self.payment_status]:
            self.payment_status = status
            changed = True
        if changed:
            self.updated_at = utcnow()
        return changed

    def _stays(self, noted: bool, status: PaymentStatus, why: str) -> Outcome:
        """A payment event that moves nothing: applied if its news was new to the order."""
        if noted:
            self._changed()
            return Outcome.done(f"payment {status.value} noted; {why}")
        return Outcome.ignored(why)

    # The saga's steps 5 and 6, and the reactions to stale or late events.
    def payment_approved(self, payment_id: str, causation_id: str) -> Outcome:
        noted = self._note(PaymentStatus.APPROVED, payment_id)
        if self.status is OrderStatus.PENDING_PAYMENT:
            self._move(OrderStatus.RECEIVED, Actor.PAYMENT, "payment approved", causation_id)
            return Outcome.moved(OrderStatus.PENDING_PAYMENT, OrderStatus.RECEIVED)
        return self._stays(
            noted,
            PaymentStatus.APPROVED,
            f"order is {self.status.value} "
            "(a cancelled order's payment is refunded on OrderCancelled)",
        )

    def payment_failed(
        self, status: PaymentStatus, payment_id: str, reason: str, causation_id: str
    ) -> Outcome:
        noted = self._note(status, payment_id)
        if self.status is OrderStatus.PENDING_PAYMENT:
            self._move(OrderStatus.CANCELLED, Actor.PAYMENT, reason, causation_id)
            return Outcome.moved(OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED, reason)
        return self._stays(noted, status, f"order is {self.status.value}")

    def payment_refunded(self, payment_id: str, causation_id: str) -> Outcome:
        noted = self._note(PaymentStatus.REFUNDED, payment_id)
        if self.status is OrderStatus.RECEIVED:
            self._move(OrderStatus.CANCELLED, Actor.PAYMENT, "payment refunded", causation_id)
            return Outcome.moved(OrderStatus.RECEIVED, OrderStatus.CANCELLED, "payment refunded")
        return self._stays(noted, PaymentStatus.REFUNDED, f"order stays {self.status.value}")

    def time_out(self) -> Outcome:
        """Cancel a PENDING_PAYMENT order whose payment deadline passed."""
        if self.status is not OrderStatus.PENDING_PAYMENT:
            return Outcome.ignored(f"order is {self.status.value}")
        reason = "no payment outcome before the deadline"
        self._move(OrderStatus.CANCELLED, Actor.TIMEOUT, reason)
        return Outcome.moved(OrderStatus.PENDING_PAYMENT, OrderStatus.CANCELLED, reason)

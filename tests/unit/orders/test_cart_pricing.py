"""Cart rules and pricing: the server prices the order from its catalogue snapshot."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chassis.errors import InvalidArgument
from orders.domain import events
from orders.domain.model import (
    Actor,
    CartLine,
    Category,
    Order,
    OrderStatus,
    PaymentStatus,
    Product,
    validate_cart,
)

TIMEOUT = timedelta(minutes=12)


def _line(quantity: int = 1, notes: str = "", product_id: str | None = None) -> CartLine:
    return CartLine(product_id or str(uuid.uuid4()), quantity, notes)


def _product(name: str, price: int, category: Category = Category.BURGER) -> Product:
    return Product.create(name, "", category, price, 60)


def test_empty_cart_is_rejected() -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_cart([])
    assert caught.value.field == "items"
    assert "empty" in caught.value.description


def test_fifty_lines_are_accepted_fifty_one_are_not() -> None:
    assert len(validate_cart([_line() for _ in range(50)])) == 50
    with pytest.raises(InvalidArgument) as caught:
        validate_cart([_line() for _ in range(51)])
    assert caught.value.field == "items"
    assert "50" in caught.value.description and "51" in caught.value.description, (
        caught.value.description
    )


@pytest.mark.parametrize("quantity", [0, -1, 100, 1000])
def test_quantity_outside_1_to_99_names_the_item(quantity: int) -> None:
    cart = [_line(), _line(), _line(quantity)]
    with pytest.raises(InvalidArgument) as caught:
        validate_cart(cart)
    assert caught.value.field == "items[2].quantity", f"got {caught.value.field!r}"
    assert str(quantity) in caught.value.description


@pytest.mark.parametrize("quantity", [1, 99])
def test_quantity_limits_are_inclusive(quantity: int) -> None:
    assert validate_cart([_line(quantity)])[0].quantity == quantity


def test_notes_longer_than_140_characters_name_the_item() -> None:
    assert validate_cart([_line(notes="n" * 140)])[0].notes == "n" * 140
    with pytest.raises(InvalidArgument) as caught:
        validate_cart([_line(notes="sem cebola"), _line(notes="n" * 141)])
    assert caught.value.field == "items[1].notes", f"got {caught.value.field!r}"


def test_notes_are_trimmed_and_control_characters_refused() -> None:
    assert validate_cart([_line(notes="  sem cebola  ")])[0].notes == "sem cebola"
    with pytest.raises(InvalidArgument) as caught:
        validate_cart([_line(notes="sem\x00cebola")])
    assert caught.value.field == "items[0].notes"


@pytest.mark.parametrize(
    "product_id", ["", "42", "not-a-uuid", "6b1d4a10-0000-4000-8000-00000000000g"]
)
def test_malformed_product_id_names_the_item(product_id: str) -> None:
    cart = [_line(), CartLine(product_id, 1, "")]
    with pytest.raises(InvalidArgument) as caught:
        validate_cart(cart)
    assert caught.value.field == "items[1].product_id", (
        f"{product_id!r}: got {caught.value.field!r}"
    )


def test_product_ids_are_canonicalised() -> None:
    upper = str(uuid.uuid4()).upper()
    assert validate_cart([CartLine(upper, 1, "")])[0].product_id == upper.lower()


def test_total_is_computed_from_the_catalogue_snapshot() -> None:
    burger = _product("X-Burger", 2590)
    fries = _product("Batata frita", 1290, Category.SIDE)
    drink = _product("Refrigerante", 690, Category.DRINK)
    catalogue = {p.id: p for p in (burger, fries, drink)}
    cart = [
        CartLine(burger.id, 2, "sem cebola"),
        CartLine(fries.id, 1, ""),
        CartLine(drink.id, 3, ""),
    ]
    order = Order.check_out("req-1", None, cart, catalogue, TIMEOUT)

    expected = 2 * 2590 + 1290 + 3 * 690
    assert order.total_centavos == expected, (
        f"expected total {expected}, got {order.total_centavos}"
    )
    assert [
        (i.name, i.unit_price_centavos, i.quantity, i.subtotal_centavos) for i in order.items
    ] == [
        ("X-Burger", 2590, 2, 5180),
        ("Batata frita", 1290, 1, 1290),
        ("Refrigerante", 690, 3, 2070),
    ]
    assert [i.category for i in order.items] == [Category.BURGER, Category.SIDE, Category.DRINK]
    assert order.items[0].notes == "sem cebola"
    assert isinstance(order.total_centavos, int)

    # a later price change does not touch the snapshot
    burger.change(price_centavos=9999, name="X-Caro")
    assert (order.items[0].name, order.items[0].unit_price_centavos) == ("X-Burger", 2590)
    assert order.total_centavos == expected


def test_new_order_is_pending_payment_with_a_deadline_and_a_first_history_entry() -> None:
    burger = _product("X-Burger", 2590)
    order = Order.check_out(
        "req-2", "cust-1", [CartLine(burger.id, 1, "")], {burger.id: burger}, TIMEOUT
    )
    assert order.status is OrderStatus.PENDING_PAYMENT
    assert order.payment_status is PaymentStatus.UNSPECIFIED
    assert order.customer_id == "cust-1" and order.request_id == "req-2"
    assert order.payment_deadline == order.created_at + TIMEOUT
    assert [(h.status, h.actor) for h in order.history] == [
        (OrderStatus.PENDING_PAYMENT, Actor.CUSTOMER)
    ]
    assert order.events == [], "OrderCreated is recorded once the number is known, not before"
    order.number = 17
    order.record_created()
    created, changed = order.events
    assert isinstance(created, events.OrderCreated)
    assert isinstance(changed, events.OrderChanged), "the hook of every change, never published"
    assert (changed.order_id, changed.entered) == (order.id, OrderStatus.PENDING_PAYMENT)
    assert (
        created.order_id,
        created.order_number,
        created.customer_id,
        created.total_centavos,
    ) == (order.id, 17, "cust-1", 2590)
    assert created.payment_deadline == order.payment_deadline
    assert [(i.product_id, i.name, i.unit_price_centavos, i.quantity) for i in created.items] == [
        (burger.id, "X-Burger", 2590, 1)
    ]


def test_anonymous_order_created_event_has_empty_customer() -> None:
    burger = _product("X-Burger", 2590)
    order = Order.check_out(
        "req-3", None, [CartLine(burger.id, 1, "")], {burger.id: burger}, TIMEOUT
    )
    order.record_created()
    created = order.events[0]
    assert isinstance(created, events.OrderCreated)
    assert created.customer_id == ""


def test_unknown_product_names_the_item() -> None:
    burger = _product("X-Burger", 2590)
    missing = str(uuid.uuid4())
    with pytest.raises(InvalidArgument) as caught:
        Order.check_out(
            "r",
            None,
            [CartLine(burger.id, 1, ""), CartLine(missing, 1, "")],
            {burger.id: burger},
            TIMEOUT,
        )
    assert caught.value.field == "items[1].product_id"
    assert missing in caught.value.description and "does not exist" in caught.value.description


def test_archived_product_names_the_item() -> None:
    burger = _product("X-Burger", 2590)
    burger.change(active=False)
    with pytest.raises(InvalidArgument) as caught:
        Order.check_out("r", None, [CartLine(burger.id, 1, "")], {burger.id: burger}, TIMEOUT)
    assert caught.value.field == "items[0].product_id"
    assert "archived" in caught.value.description and burger.id in caught.value.description

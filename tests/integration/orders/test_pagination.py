"""Listing orders and products page by page, with filters, and refusing tampered tokens."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from chassis import pagination
from chassis.errors import InvalidArgument
from orders.domain.model import Category, Order, OrderStatus, Product
from orders.service_layer import catalog, customers, ordering
from orders.service_layer.unit_of_work import UowFactory
from tests.integration.orders.helpers import check_out, move_to, new_product


def _all_orders(uow: UowFactory, size: int, **filters: Any) -> tuple[list[Order], int]:
    args = {
        "status": None,
        "customer_id": "",
        "created_after": None,
        "created_before": None,
    } | filters
    found: list[Order] = []
    token, pages = "", 0
    while True:
        page, token = ordering.list_orders(
            uow,
            args["status"],
            args["customer_id"],
            args["created_after"],
            args["created_before"],
            size,
            token,
        )
        pages += 1
        assert len(page) <= size, f"a page of {size} had {len(page)} orders"
        found.extend(page)
        if not token:
            return found, pages
        assert pages < 100, "pagination does not end"


def _ids(orders: list[Order]) -> list[str]:
    return [o.id for o in orders]


def test_list_orders_newest_first_page_by_page(uow: UowFactory) -> None:
    burger = new_product(uow)
    created = [check_out(uow, [burger]) for _ in range(7)]
    newest_first = _ids(list(reversed(created)))
    found, pages = _all_orders(uow, 3)
    assert _ids(found) == newest_first, "pages concatenated give every order once, newest first"
    assert pages == 3, f"7 orders in pages of 3 take 3 pages, took {pages}"
    exact, pages = _all_orders(uow, 7)
    assert (_ids(exact), pages) == (newest_first, 1), "an exact fit has no next page token"
    default, token = ordering.list_orders(uow, None, "", None, None, 0, "")
    assert (_ids(default), token) == (newest_first, ""), "page size 0 means the default (50)"
    full = default[0]
    assert full.items and full.history, "listed orders come with items and history"


def test_list_orders_filters(uow: UowFactory) -> None:
    burger = new_product(uow)
    ana = customers.register(uow, "529.982.247-25", "Ana", "ana@example.com")
    created = [
        check_out(uow, [burger], customer_cpf="52998224725" if i % 2 else "") for i in range(8)
    ]
    for order in created[:3]:
        move_to(uow, order.id, OrderStatus.RECEIVED)
    move_to(uow, created[3].id, OrderStatus.CANCELLED)

    received, _ = _all_orders(uow, 2, status=OrderStatus.RECEIVED)
    assert _ids(received) == [created[2].id, created[1].id, created[0].id], (
        "status filter, newest first"
    )
    pending, _ = _all_orders(uow, 2, status=OrderStatus.PENDING_PAYMENT)
    assert _ids(pending) == _ids(list(reversed(created[4:])))

    anas, _ = _all_orders(uow, 2, customer_id=ana.id)
    assert _ids(anas) == [o.id for o in reversed(created) if o.customer_id == ana.id]
    assert len(anas) == 4
    nobody, _ = _all_orders(uow, 2, customer_id=str(uuid.uuid4()))
    assert nobody == []

    after, before = created[2].created_at, created[6].created_at
    window, _ = _all_orders(uow, 2, created_after=after, created_before=before)
    assert _ids(window) == [created[5].id, created[4].id, created[3].id, created[2].id], (
        "created_after is inclusive, created_before exclusive"
    )
    combined, _ = _all_orders(
        uow, 2, status=OrderStatus.RECEIVED, created_after=after, created_before=before
    )
    assert _ids(combined) == [created[2].id]
    anas_window, _ = _all_orders(uow, 1, customer_id=ana.id, created_after=after)
    assert _ids(anas_window) == [created[7].id, created[5].id, created[3].id]


def test_list_orders_argument_errors(uow: UowFactory) -> None:
    order = check_out(uow)
    with pytest.raises(InvalidArgument) as caught:
        ordering.list_orders(
            uow, None, "", order.created_at, order.created_at - timedelta(seconds=1), 10, ""
        )
    assert caught.value.field == "created_before"
    with pytest.raises(InvalidArgument) as caught:
        ordering.list_orders(uow, None, "not-a-uuid", None, None, 10, "")
    assert caught.value.field == "customer_id"
    for size in (-1, 101):
        with pytest.raises(InvalidArgument) as caught:
            ordering.list_orders(uow, None, "", None, None, size, "")
        assert caught.value.field == "page_size" and str(size) in caught.value.message


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


TAMPERED = [
    "!!!not base64!!!",
    "bm90IGpzb24",  # "not json"
    _token({"a": 1}),
    _token([]),
    _token(["2026-01-01T00:00:00+00:00"]),
    _token(["2026-01-01T00:00:00+00:00", str(uuid.uuid4()), "extra"]),
    _token(["yesterday", str(uuid.uuid4())]),
    _token(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
    _token([12, 34]),
    _token([None, None]),
]


@pytest.mark.parametrize("token", TAMPERED, ids=[f"tampered-{i}" for i in range(len(TAMPERED))])
def test_tampered_order_page_token_is_invalid_argument(uow: UowFactory, token: str) -> None:
    check_out(uow)
    with pytest.raises(InvalidArgument) as caught:
        ordering.list_orders(uow, None, "", None, None, 10, token)
    assert caught.value.field == "page_token", (
        f"{token!r}: expected page_token, got {caught.value.field!r}"
    )


def test_order_page_token_round_trip(uow: UowFactory) -> None:
    burger = new_product(uow)
    created = [check_out(uow, [burger]) for _ in range(3)]
    _, token = ordering.list_orders(uow, None, "", None, None, 1, "")
    key = pagination.decode(token, 2)
    assert key is not None and key[1] == created[-1].id, (
        f"the token holds the last row's key: {key}"
    )


# -- products ---------------------------------------------------------------------------
def _all_products(
    uow: UowFactory, size: int, category: Category | None, include_archived: bool
) -> list[Product]:
    found: list[Product] = []
    token = ""
    for _ in range(100):
        page, token = catalog.list_products(uow, category, include_archived, size, token)
        assert len(page) <= size
        found.extend(page)
        if not token:
            return found
    raise AssertionError("pagination does not end")


def test_list_products_by_category_and_archived(uow: UowFactory) -> None:
    made = {
        "Refrigerante": Category.DRINK,
        "Agua mineral": Category.DRINK,
        "Suco": Category.DRINK,
        "X-Burger": Category.BURGER,
        "X-Salada": Category.BURGER,
        "Batata": Category.SIDE,
        "Sundae": Category.DESSERT,
        "Cafe": Category.DRINK,
    }
    products = {
        name: new_product(uow, name, 500 + i, category)
        for i, (name, category) in enumerate(made.items())
    }
    catalog.archive(uow, products["Suco"].id)
    catalog.archive(uow, products["X-Salada"].id)

    menu = [p.name for p in _all_products(uow, 2, None, False)]
    # ordered by category (enum order: BURGER, SIDE, DRINK, DESSERT), then name
    assert menu == ["X-Burger", "Batata", "Agua mineral", "Cafe", "Refrigerante", "Sundae"], menu
    everything = [p.name for p in _all_products(uow, 3, None, True)]
    assert everything == [
        "X-Burger",
        "X-Salada",
        "Batata",
        "Agua mineral",
        "Cafe",
        "Refrigerante",
        "Suco",
        "Sundae",
    ], everything
    drinks = [p.name for p in _all_products(uow, 1, Category.DRINK, False)]
    assert drinks == ["Agua mineral", "Cafe", "Refrigerante"], drinks
    all_drinks = [p.name for p in _all_products(uow, 2, Category.DRINK, True)]
    assert all_drinks == ["Agua mineral", "Cafe", "Refrigerante", "Suco"], all_drinks
    assert _all_products(uow, 5, Category.BURGER, False)[0].name == "X-Burger"


def test_products_with_the_same_name_are_all_listed(uow: UowFactory) -> None:
    twins = [new_product(uow, "Combo", 1000 + i) for i in range(5)]
    listed = _all_products(uow, 2, Category.BURGER, False)
    assert sorted(p.id for p in listed) == sorted(p.id for p in twins), (
        "ties on name are broken by id"
    )


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        _token(["BURGER", "X-Burger"]),
        _token(["PIZZA", "X-Burger", str(uuid.uuid4())]),
        _token(["BURGER", "X-Burger", "not-a-uuid"]),
        _token(["BURGER", 12, str(uuid.uuid4())]),
    ],
    ids=["not-base64", "short", "unknown-category", "bad-id", "name-not-text"],
)
def test_tampered_product_page_token_is_invalid_argument(uow: UowFactory, token: str) -> None:
    new_product(uow)
    with pytest.raises(InvalidArgument) as caught:
        catalog.list_products(uow, None, False, 10, token)
    assert caught.value.field == "page_token", (
        f"{token!r}: expected page_token, got {caught.value.field!r}"
    )

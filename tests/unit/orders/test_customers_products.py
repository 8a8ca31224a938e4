"""Customers (e-mail, name, erasure) and products (field rules, update by field name)."""

from __future__ import annotations

from typing import Any

import pytest

from chassis.errors import InvalidArgument
from orders.domain.model import Category, Customer, Product, validate_email, validate_request_id
from orders.service_layer import catalog


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ana@example.com", "ana@example.com"),
        ("  Ana.Souza+kiosk@Example.COM.br ", "ana.souza+kiosk@example.com.br"),
        ("a@b.co", "a@b.co"),
    ],
)
def test_valid_emails_are_trimmed_and_lowercased(raw: str, stored: str) -> None:
    got = validate_email(raw)
    assert got == stored, f"validate_email({raw!r}): expected {stored!r}, got {got!r}"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ana",
        "ana@",
        "@example.com",
        "ana@example",
        "ana@@example.com",
        "ana @example.com",
        "ana@exa mple.com",
        "ana@example.",
        "ana@example.com.",
        "a" * 250 + "@x.com",
    ],
)
def test_invalid_emails_are_rejected_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_email(raw)
    assert caught.value.field == "email", (
        f"{raw!r}: expected field 'email', got {caught.value.field!r}"
    )


def test_register_customer_validates_name_and_email() -> None:
    customer = Customer.register("52998224725", "  Ana Souza ", "ANA@example.com")
    assert (customer.cpf, customer.name, customer.email) == (
        "52998224725",
        "Ana Souza",
        "ana@example.com",
    )
    assert customer.erased_at is None
    with pytest.raises(InvalidArgument) as caught:
        Customer.register("52998224725", "", "ana@example.com")
    assert caught.value.field == "name"
    with pytest.raises(InvalidArgument) as caught:
        Customer.register("52998224725", "x" * 121, "ana@example.com")
    assert caught.value.field == "name"
    with pytest.raises(InvalidArgument) as caught:
        Customer.register("52998224725", "Ana", "not-an-email")
    assert caught.value.field == "email"


def test_erase_removes_personal_data_for_good_and_keeps_the_first_erasure_time() -> None:
    customer = Customer.register("52998224725", "Ana Souza", "ana@example.com")
    customer.erase()
    assert (customer.cpf, customer.name, customer.email) == (None, "", ""), vars(customer)
    first = customer.erased_at
    assert first is not None
    customer.erase()
    assert customer.erased_at == first, "erasing twice must not change the erasure time"


@pytest.mark.parametrize(
    "request_id",
    ["a", "kiosk-7:2026-11-28T12:00:00.123", "A" * 64, "550e8400-e29b-41d4-a716-446655440000"],
)
def test_request_ids_accepted(request_id: str) -> None:
    assert validate_request_id(request_id) == request_id


@pytest.mark.parametrize(
    "request_id", ["", "A" * 65, "has space", "slash/no", "ção", "semi;colon", "trailing-newline\n"]
)
def test_request_ids_rejected(request_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_request_id(request_id)
    assert caught.value.field == "request_id"


def _product(**overrides: Any) -> Product:
    fields: dict[str, Any] = {
        "name": "X-Burger",
        "description": "Pão, hambúrguer, queijo",
        "category": Category.BURGER,
        "price_centavos": 2590,
        "preparation_seconds": 480,
    }
    fields.update(overrides)
    return Product.create(**fields)


def test_create_product_keeps_the_given_fields_and_is_active() -> None:
    product = _product(
        name="  Sundae ", category=Category.DESSERT, price_centavos=1190, preparation_seconds=0
    )
    assert (
        product.name,
        product.category,
        product.price_centavos,
        product.preparation_seconds,
        product.active,
    ) == ("Sundae", Category.DESSERT, 1190, 0, True)
    assert product.description == "Pão, hambúrguer, queijo"


@pytest.mark.parametrize("category", list(Category))
def test_every_category_is_accepted(category: Category) -> None:
    assert _product(category=category).category is category


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "product.name"),
        ({"name": "   "}, "product.name"),
        ({"name": "x" * 81}, "product.name"),
        ({"name": "bad\nname"}, "product.name"),
        ({"description": "d" * 501}, "product.description"),
        ({"category": None}, "product.category"),
        ({"category": "BURGER"}, "product.category"),
        ({"price_centavos": 0}, "product.price_centavos"),
        ({"price_centavos": -1}, "product.price_centavos"),
        ({"price_centavos": 10_000_001}, "product.price_centavos"),
        ({"price_centavos": 25.9}, "product.price_centavos"),
        ({"preparation_seconds": -1}, "product.preparation_seconds"),
        ({"preparation_seconds": 7201}, "product.preparation_seconds"),
    ],
)
def test_product_field_rules(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _product(**overrides)
    assert caught.value.field == field, (
        f"{overrides}: expected an error naming {field!r}, got {caught.value.field!r}"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "x"},
        {"name": "x" * 80},
        {"description": ""},
        {"description": "d" * 500},
        {"price_centavos": 1},
        {"price_centavos": 10_000_000},
        {"preparation_seconds": 0},
        {"preparation_seconds": 7200},
    ],
)
def test_product_field_limits_are_inclusive(overrides: dict[str, Any]) -> None:
    product = _product(**overrides)
    for name, value in overrides.items():
        assert getattr(product, name) == value, (
            f"{name}: expected {value!r}, got {getattr(product, name)!r}"
        )


def test_change_applies_each_maskable_field() -> None:
    product = _product()
    before = product.updated_at
    product.change(
        name="X-Tudo",
        description="tudo",
        category=Category.SIDE,
        price_centavos=3990,
        preparation_seconds=600,
        active=False,
    )
    assert (
        product.name,
        product.description,
        product.category,
        product.price_centavos,
        product.preparation_seconds,
        product.active,
    ) == ("X-Tudo", "tudo", Category.SIDE, 3990, 600, False)
    assert product.updated_at >= before


@pytest.mark.parametrize("name", ["id", "created_at", "updated_at", "price", "bogus"])
def test_change_rejects_fields_outside_the_mask_names(name: str) -> None:
    product = _product()
    with pytest.raises(InvalidArgument) as caught:
        product.change(**{name: "x"})
    assert caught.value.field == "update_mask"
    assert name in caught.value.description, caught.value.description


def test_catalog_update_with_nothing_to_change_is_rejected_before_the_database() -> None:
    def no_database() -> Any:
        raise AssertionError("the database must not be touched")

    with pytest.raises(InvalidArgument) as caught:
        catalog.update(no_database, "6b1d4a10-0000-4000-8000-000000000001", {})
    assert caught.value.field == "update_mask"
    for name in catalog.UPDATABLE:
        assert name in caught.value.description, (
            f"the error should list {name!r}: {caught.value.description}"
        )
    with pytest.raises(InvalidArgument) as caught:
        catalog.update(no_database, "not-a-uuid", {"name": "x"})
    assert caught.value.field == "product.id"


def test_sample_menu_has_products_of_every_category_with_valid_fields() -> None:
    categories = {row[3] for row in catalog.SAMPLE_MENU}
    assert categories == set(Category), f"sample menu categories: {categories}"
    ids = [row[0] for row in catalog.SAMPLE_MENU]
    assert len(ids) == len(set(ids)), "sample menu ids must be distinct"
    for _id, name, description, category, price, seconds in catalog.SAMPLE_MENU:
        _product(
            name=name,
            description=description,
            category=category,
            price_centavos=price,
            preparation_seconds=seconds,
        )

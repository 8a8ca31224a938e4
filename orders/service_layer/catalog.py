"""Use cases of the catalogue: create, get, list, update by field mask, archive, sample menu."""

from __future__ import annotations

from typing import Any

from chassis import pagination
from chassis.errors import InvalidArgument, NotFound
from chassis.validation import validate_uuid
from orders.domain.model import Category, Product
from orders.service_layer.unit_of_work import UowFactory

PRODUCT_KEY = pagination.Keyset(
    lambda category: Category(category).value, pagination.text, pagination.uuid_text
)
UPDATABLE = ("name", "description", "category", "price_centavos", "preparation_seconds", "active")


def create(
    uow_factory: UowFactory,
    name: str,
    description: str,
    category: Category | None,
    price_centavos: int,
    preparation_seconds: int,
) -> Product:
    product = Product.create(name, description, category, price_centavos, preparation_seconds)
    with uow_factory() as uow:
        uow.products.add(product)
        uow.commit()
    return product


def get(uow_factory: UowFactory, product_id: str) -> Product:
    product_id = validate_uuid(product_id, "product_id")
    with uow_factory().reading() as uow:
        product = uow.products.get(product_id)
    if product is None:
        raise NotFound("product", product_id)
    return product


def list_products(
    uow_factory: UowFactory,
    category: Category | None,
    include_archived: bool,
    page_size: int,
    page_token: str,
) -> tuple[list[Product], str]:
    size = pagination.page_size(page_size)
    after = PRODUCT_KEY.after(page_token)
    with uow_factory().reading() as uow:
        found = uow.products.search(category, include_archived, after, size + 1)
    return PRODUCT_KEY.page(found, size, lambda p: [p.category.value, p.name, p.id])


def update(uow_factory: UowFactory, product_id: str, changes: dict[str, Any]) -> Product:
    product_id = validate_uuid(product_id, "product.id")
    if not changes:
        raise InvalidArgument(
            "update_mask", f"name at least one field to change: {', '.join(UPDATABLE)}"
        )
    with uow_factory() as uow:
        product = uow.products.get(product_id, for_update=True)
        if product is None:
            raise NotFound("product", product_id)
        product.change(**changes)
        uow.products.save(product)
        uow.commit()
    return product


def archive(uow_factory: UowFactory, product_id: str) -> Product:
    # validated here so that an error names the request's field, not UpdateProduct's
    return update(uow_factory, validate_uuid(product_id, "product_id"), {"active": False})


SAMPLE_MENU = [
    # (fixed id, name, description, category, price in centavos, preparation seconds)
    (
        "6b1d4a10-0000-4000-8000-000000000001",
        "X-Burger",
        "Pão, hambúrguer 150 g, queijo",
        Category.BURGER,
        2590,
        480,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000002",
        "X-Salada",
        "X-Burger com alface e tomate",
        Category.BURGER,
        2790,
        480,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000003",
        "X-Bacon",
        "X-Burger com bacon crocante",
        Category.BURGER,
        3190,
        540,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000004",
        "Batata frita",
        "Porção média",
        Category.SIDE,
        1290,
        300,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000005",
        "Onion rings",
        "Anéis de cebola empanados",
        Category.SIDE,
        1490,
        300,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000006",
        "Refrigerante",
        "Lata 350 ml",
        Category.DRINK,
        690,
        30,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000007",
        "Suco de laranja",
        "Natural, 400 ml",
        Category.DRINK,
        990,
        120,
    ),
    (
        "6b1d4a10-0000-4000-8000-000000000008",
        "Sundae",
        "Sorvete de baunilha com calda",
        Category.DESSERT,
        1190,
        120,
    ),
    ("6b1d4a10-0000-4000-8000-000000000009", "Torta de maçã", "Fatia", Category.DESSERT, 990, 60),
]


def seed_sample_menu(uow_factory: UowFactory) -> int:
    """Add the sample menu, leaving products already there as they are; returns how many were
    added."""
    added = 0
    with uow_factory() as uow:
        for product_id, name, description, category, price, seconds in SAMPLE_MENU:
            if uow.products.get(product_id) is None:
                product = Product.create(name, description, category, price, seconds)
                product.id = product_id
                uow.products.add(product)
                added += 1
        uow.commit()
    return added

"""The orders service through its real gRPC server: every RPC of CustomerService,
CatalogService, OrderService and KitchenService, their error cases with the exact status code,
message and rich details, WatchOrder, reflection and health.

The processes (orders, payment, gateway, NATS) are shared by the module, so every test makes
its own customers (fresh CPFs), products and orders and looks only at those.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeAlias

import grpc
import pytest
from google.protobuf import descriptor_pool, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from comanda.orders.v1 import catalog_pb2, customers_pb2, orders_pb2
from comanda.payment.v1 import payment_pb2
from tests.support.stack import STAFF, Stack
from tests.support.waiting import wait_for

Code = grpc.StatusCode
OS = orders_pb2
Status: TypeAlias = orders_pb2.OrderStatus.ValueType
WRONG_STAFF = (("authorization", "Bearer not-the-staff-token"),)
SERVICES = [
    "comanda.orders.v1.CustomerService",
    "comanda.orders.v1.CatalogService",
    "comanda.orders.v1.OrderService",
    "comanda.orders.v1.KitchenService",
]
_rng = random.SystemRandom()


# -- helpers ----------------------------------------------------------------------------
def new_cpf() -> str:
    """A random valid CPF (11 digits), computed here independently of the service's code."""
    while True:
        digits = [_rng.randint(0, 9) for _ in range(9)]
        if len(set(digits)) > 1:
            break
    for _ in range(2):
        weight = len(digits) + 1
        rest = sum(d * (weight - i) for i, d in enumerate(digits)) % 11
        digits.append(0 if rest < 2 else 11 - rest)
    return "".join(map(str, digits))


def formatted(cpf: str) -> str:
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"


def rpc_error(call: Callable[..., Any], request: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=15, **kwargs)
    return caught.value


def expect(error: grpc.RpcError, code: grpc.StatusCode, *needles: str) -> str:
    got = error.code()
    details = str(error.details())
    assert got == code, f"expected {code.name}, got {got.name}: {details!r}"
    for needle in needles:
        assert needle in details, (
            f"expected the {code.name} message to name {needle!r}, got {details!r}"
        )
    return details


def _details(error: grpc.RpcError) -> list[Any]:
    status = rpc_status.from_call(error)
    assert status is not None, (
        "expected a google.rpc.Status in the trailers (grpc-status-details-bin)"
    )
    assert status.code == error.code().value[0]
    return list(status.details)


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    found: dict[str, str] = {}
    for detail in _details(error):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def invalid(error: grpc.RpcError, field: str, *needles: str) -> None:
    """INVALID_ARGUMENT naming `field` in the message and in a BadRequest field violation."""
    expect(error, Code.INVALID_ARGUMENT, field, *needles)
    violations = field_violations(error)
    assert field in violations, (
        f"expected a BadRequest field violation for {field!r}, got {violations}"
    )


def precondition_failed(error: grpc.RpcError, current: str, wanted: str) -> None:
    expect(error, Code.FAILED_PRECONDITION, current, wanted)
    violations = []
    for detail in _details(error):
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            violations.extend(failure.violations)
    assert violations and current in violations[0].description, (
        f"expected a PreconditionFailure: {violations}"
    )


def not_found(error: grpc.RpcError, resource_id: str) -> None:
    expect(error, Code.NOT_FOUND, resource_id)
    infos = []
    for detail in _details(error):
        if detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            info = error_details_pb2.ResourceInfo()
            detail.Unpack(info)
            infos.append(info)
    assert infos and infos[0].resource_name == resource_id, (
        f"expected a ResourceInfo naming {resource_id}: {infos}"
    )


def new_product(
    stack: Stack,
    name: str = "X-Burger",
    price: int = 2590,
    category: catalog_pb2.Category.ValueType = catalog_pb2.CATEGORY_BURGER,
    **fields: Any,
) -> catalog_pb2.Product:
    product = catalog_pb2.Product(
        name=f"{name} {uuid.uuid4().hex[:6]}",
        description="feito na hora",
        category=category,
        price_centavos=price,
        preparation_seconds=300,
        **fields,
    )
    created: catalog_pb2.Product = stack.catalog.CreateProduct(
        catalog_pb2.CreateProductRequest(product=product), metadata=STAFF, timeout=15
    )
    return created


def item(
    product: catalog_pb2.Product, quantity: int = 1, notes: str = ""
) -> orders_pb2.CreateOrderItem:
    return orders_pb2.CreateOrderItem(product_id=product.id, quantity=quantity, notes=notes)


def create_order(
    stack: Stack,
    items: list[orders_pb2.CreateOrderItem] | None = None,
    cpf: str = "",
    request_id: str | None = None,
) -> orders_pb2.Order:
    if items is None:
        items = [item(new_product(stack))]
    request = orders_pb2.CreateOrderRequest(
        request_id=request_id or f"e2e-{uuid.uuid4()}", customer_cpf=cpf, items=items
    )
    order: orders_pb2.Order = stack.order_service.CreateOrder(request, timeout=15)
    return order


def get_order(stack: Stack, order_id: str) -> orders_pb2.Order:
    order: orders_pb2.Order = stack.order_service.GetOrder(
        orders_pb2.GetOrderRequest(order_id=order_id), timeout=15
    )
    return order


def wait_status(
    stack: Stack, order_id: str, status: Status, timeout: float = 30
) -> orders_pb2.Order:
    name = OS.OrderStatus.Name(status)

    def check() -> orders_pb2.Order | None:
        order = get_order(stack, order_id)
        return order if order.status == status else None

    found = wait_for(check, timeout, f"order {order_id} to be {name}")
    assert found is not None
    return found


def pay(stack: Stack, order_id: str) -> orders_pb2.Order:
    """Pay through the fake checkout, as the customer's banking app would, and wait for the
    saga to move the order to RECEIVED."""
    payment = wait_for(
        lambda: stack.payments.GetOrderPayment(
            payment_pb2.GetOrderPaymentRequest(order_id=order_id), timeout=5
        ),
        30,
        f"the payment service to create the payment of order {order_id}",
    )
    stack.fake_checkout.PayFakeCheckout(
        payment_pb2.PayFakeCheckoutRequest(payment_id=payment.id), timeout=15
    )
    return wait_status(stack, order_id, OS.ORDER_STATUS_RECEIVED)


def advance(stack: Stack, order_id: str, status: Status) -> orders_pb2.Order:
    order: orders_pb2.Order = stack.kitchen.UpdateOrderStatus(
        orders_pb2.UpdateOrderStatusRequest(order_id=order_id, status=status),
        metadata=STAFF,
        timeout=15,
    )
    return order


def statuses(order: orders_pb2.Order) -> list[str]:
    return [OS.OrderStatus.Name(h.status) for h in order.history]


def register(
    stack: Stack, cpf: str | None = None, name: str = "Ana Souza", email: str = "ana@example.com"
) -> customers_pb2.Customer:
    customer: customers_pb2.Customer = stack.customers.RegisterCustomer(
        customers_pb2.RegisterCustomerRequest(
            cpf=cpf or formatted(new_cpf()), name=name, email=email
        ),
        timeout=15,
    )
    return customer


# -- customers --------------------------------------------------------------------------
def test_register_identify_and_get_customer(stack: Stack) -> None:
    cpf = new_cpf()
    customer = register(stack, formatted(cpf), "  Ana Souza ", "Ana@Example.COM")
    assert (customer.cpf, customer.name, customer.email) == (cpf, "Ana Souza", "ana@example.com"), (
        customer
    )
    assert (
        uuid.UUID(customer.id)
        and customer.HasField("create_time")
        and not customer.HasField("erase_time")
    )
    for spelling in (cpf, formatted(cpf)):
        found = stack.customers.IdentifyCustomer(
            customers_pb2.IdentifyCustomerRequest(cpf=spelling), timeout=15
        )
        assert found == customer, f"identify {spelling!r}: expected {customer}, got {found}"
    got = stack.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=STAFF, timeout=15
    )
    assert got == customer


def test_register_customer_errors(stack: Stack) -> None:
    cpf = new_cpf()
    register(stack, cpf)
    error = rpc_error(
        stack.customers.RegisterCustomer,
        customers_pb2.RegisterCustomerRequest(
            cpf=formatted(cpf), name="Outra", email="o@example.com"
        ),
    )
    expect(error, Code.ALREADY_EXISTS, "CPF")
    bad_digit = cpf[:10] + str((int(cpf[10]) + 1) % 10)
    cases = [
        (
            customers_pb2.RegisterCustomerRequest(cpf=bad_digit, name="Ana", email="a@example.com"),
            "cpf",
        ),
        (
            customers_pb2.RegisterCustomerRequest(
                cpf="11111111111", name="Ana", email="a@example.com"
            ),
            "cpf",
        ),
        (
            customers_pb2.RegisterCustomerRequest(
                cpf="123.456.78-09", name="Ana", email="a@example.com"
            ),
            "cpf",
        ),
        (customers_pb2.RegisterCustomerRequest(cpf="", name="Ana", email="a@example.com"), "cpf"),
        (
            customers_pb2.RegisterCustomerRequest(cpf=new_cpf(), name="", email="a@example.com"),
            "name",
        ),
        (
            customers_pb2.RegisterCustomerRequest(
                cpf=new_cpf(), name="A" * 121, email="a@example.com"
            ),
            "name",
        ),
        (
            customers_pb2.RegisterCustomerRequest(
                cpf=new_cpf(), name="Ana", email="ana.example.com"
            ),
            "email",
        ),
        (customers_pb2.RegisterCustomerRequest(cpf=new_cpf(), name="Ana", email=""), "email"),
    ]
    for request, field in cases:
        invalid(rpc_error(stack.customers.RegisterCustomer, request), field)


def test_identify_and_get_customer_errors(stack: Stack) -> None:
    unknown = new_cpf()
    error = rpc_error(
        stack.customers.IdentifyCustomer, customers_pb2.IdentifyCustomerRequest(cpf=unknown)
    )
    details = expect(error, Code.NOT_FOUND, unknown[-2:])
    assert unknown not in details, f"the NOT_FOUND message must not echo the whole CPF: {details!r}"
    invalid(
        rpc_error(
            stack.customers.IdentifyCustomer, customers_pb2.IdentifyCustomerRequest(cpf="123")
        ),
        "cpf",
    )
    missing = str(uuid.uuid4())
    not_found(
        rpc_error(
            stack.customers.GetCustomer,
            customers_pb2.GetCustomerRequest(customer_id=missing),
            metadata=STAFF,
        ),
        missing,
    )
    invalid(
        rpc_error(
            stack.customers.GetCustomer,
            customers_pb2.GetCustomerRequest(customer_id="nope"),
            metadata=STAFF,
        ),
        "customer_id",
    )
    not_found(
        rpc_error(
            stack.customers.EraseCustomer,
            customers_pb2.EraseCustomerRequest(customer_id=missing),
            metadata=STAFF,
        ),
        missing,
    )


def test_erase_customer(stack: Stack) -> None:
    cpf = new_cpf()
    customer = register(stack, cpf)
    order = create_order(stack, cpf=cpf)
    assert order.customer_id == customer.id
    erased = stack.customers.EraseCustomer(
        customers_pb2.EraseCustomerRequest(customer_id=customer.id), metadata=STAFF, timeout=15
    )
    assert (erased.id, erased.cpf, erased.name, erased.email) == (customer.id, "", "", ""), erased
    assert erased.HasField("erase_time")
    again = stack.customers.GetCustomer(
        customers_pb2.GetCustomerRequest(customer_id=customer.id), metadata=STAFF, timeout=15
    )
    assert again == erased, "the erasure is stored"
    kept = get_order(stack, order.id)
    assert kept.customer_id == "" and kept.total_centavos == order.total_centavos, kept
    expect(
        rpc_error(stack.customers.IdentifyCustomer, customers_pb2.IdentifyCustomerRequest(cpf=cpf)),
        Code.NOT_FOUND,
    )
    back = register(stack, formatted(cpf))
    assert back.id != customer.id and back.cpf == cpf, "the same CPF can register again"


# -- catalogue --------------------------------------------------------------------------
def test_create_and_get_product(stack: Stack) -> None:
    product = new_product(
        stack, "Sundae", 1190, catalog_pb2.CATEGORY_DESSERT, active=False, id=str(uuid.uuid4())
    )
    assert product.active, "a new product is active whatever the request says"
    assert product.name.startswith("Sundae ") and product.price_centavos == 1190
    assert product.category == catalog_pb2.CATEGORY_DESSERT and product.preparation_seconds == 300
    assert product.HasField("create_time") and product.HasField("update_time")
    got = stack.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id), timeout=15)
    assert got == product


def test_create_product_errors(stack: Stack) -> None:
    good: dict[str, Any] = {
        "name": "X",
        "description": "",
        "category": catalog_pb2.CATEGORY_SIDE,
        "price_centavos": 100,
        "preparation_seconds": 60,
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": ""}, "product.name"),
        ({"name": "n" * 81}, "product.name"),
        ({"description": "d" * 501}, "product.description"),
        ({"category": catalog_pb2.CATEGORY_UNSPECIFIED}, "product.category"),
        ({"category": 42}, "product.category"),
        ({"price_centavos": 0}, "product.price_centavos"),
        ({"price_centavos": -5}, "product.price_centavos"),
        ({"preparation_seconds": 7201}, "product.preparation_seconds"),
        ({"preparation_seconds": -1}, "product.preparation_seconds"),
    ]
    for change, field in cases:
        request = catalog_pb2.CreateProductRequest(
            product=catalog_pb2.Product(**{**good, **change})
        )
        invalid(rpc_error(stack.catalog.CreateProduct, request, metadata=STAFF), field)


def test_get_product_errors(stack: Stack) -> None:
    missing = str(uuid.uuid4())
    not_found(
        rpc_error(stack.catalog.GetProduct, catalog_pb2.GetProductRequest(product_id=missing)),
        missing,
    )
    invalid(
        rpc_error(stack.catalog.GetProduct, catalog_pb2.GetProductRequest(product_id="x")),
        "product_id",
    )
    invalid(
        rpc_error(stack.catalog.GetProduct, catalog_pb2.GetProductRequest()),
        "product_id",
        "required",
    )


def _list_products(stack: Stack, size: int, **filters: Any) -> list[catalog_pb2.Product]:
    found: list[catalog_pb2.Product] = []
    token = ""
    for _ in range(200):
        page = stack.catalog.ListProducts(
            catalog_pb2.ListProductsRequest(page_size=size, page_token=token, **filters), timeout=15
        )
        assert len(page.products) <= size
        found.extend(page.products)
        token = page.next_page_token
        if not token:
            return found
    raise AssertionError("ListProducts pagination does not end")


def test_list_products(stack: Stack) -> None:
    drinks = [
        new_product(stack, f"Bebida {i}", 500 + i, catalog_pb2.CATEGORY_DRINK) for i in range(3)
    ]
    side = new_product(stack, "Batata", 1290, catalog_pb2.CATEGORY_SIDE)
    stack.catalog.ArchiveProduct(
        catalog_pb2.ArchiveProductRequest(product_id=drinks[1].id), metadata=STAFF, timeout=15
    )
    menu = _list_products(stack, 2)
    ids = [p.id for p in menu]
    assert drinks[0].id in ids and drinks[2].id in ids and side.id in ids, (
        "active products are listed"
    )
    assert drinks[1].id not in ids, "archived products are not listed by default"
    assert all(p.active for p in menu)
    categories = [p.category for p in menu]
    assert categories == sorted(categories), (
        "ordered by category (then name, in the database's collation)"
    )
    assert len(ids) == len(set(ids)), "no product appears on two pages"

    only_drinks = _list_products(stack, 1, category=catalog_pb2.CATEGORY_DRINK)
    assert {p.category for p in only_drinks} == {catalog_pb2.CATEGORY_DRINK}
    assert [p.id for p in only_drinks if p.id in {d.id for d in drinks}] == [
        drinks[0].id,
        drinks[2].id,
    ]
    with_archived = _list_products(
        stack, 3, category=catalog_pb2.CATEGORY_DRINK, include_archived=True
    )
    assert [p.id for p in with_archived if p.id in {d.id for d in drinks}] == [d.id for d in drinks]

    invalid(
        rpc_error(
            stack.catalog.ListProducts, catalog_pb2.ListProductsRequest(page_token="garbage")
        ),
        "page_token",
    )
    invalid(
        rpc_error(stack.catalog.ListProducts, catalog_pb2.ListProductsRequest(page_size=101)),
        "page_size",
    )
    unknown_category: Any = 9
    invalid(
        rpc_error(
            stack.catalog.ListProducts, catalog_pb2.ListProductsRequest(category=unknown_category)
        ),
        "category",
    )


def test_update_product(stack: Stack) -> None:
    product = new_product(stack, "X-Salada", 2790)
    change = catalog_pb2.Product(
        id=product.id, name="X-Salada Grande", price_centavos=3190, description="ignored"
    )
    updated = stack.catalog.UpdateProduct(
        catalog_pb2.UpdateProductRequest(
            product=change,
            update_mask=field_mask_pb2.FieldMask(paths=["name", "product.price_centavos"]),
        ),
        metadata=STAFF,
        timeout=15,
    )
    assert (updated.name, updated.price_centavos, updated.description) == (
        "X-Salada Grande",
        3190,
        product.description,
    ), "only the masked fields change"
    assert updated.update_time.ToDatetime() >= product.update_time.ToDatetime()
    assert (
        stack.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id), timeout=15)
        == updated
    )

    def update(paths: list[str], **fields: Any) -> grpc.RpcError:
        return rpc_error(
            stack.catalog.UpdateProduct,
            catalog_pb2.UpdateProductRequest(
                product=catalog_pb2.Product(**({"id": product.id} | fields)),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=STAFF,
        )

    invalid(update(["create_time"]), "update_mask", "create_time")
    invalid(update([]), "update_mask")
    invalid(update(["price_centavos"], price_centavos=0), "product.price_centavos")
    invalid(update(["category"]), "product.category")
    invalid(update(["name"], name=""), "product.name")
    invalid(update(["name"], id="bad", name="x"), "product.id")
    missing = str(uuid.uuid4())
    not_found(update(["name"], id=missing, name="x"), missing)


def test_archive_product(stack: Stack) -> None:
    product = new_product(stack, "X-Bacon", 3190)
    past = create_order(stack, [item(product)])
    archived = stack.catalog.ArchiveProduct(
        catalog_pb2.ArchiveProductRequest(product_id=product.id), metadata=STAFF, timeout=15
    )
    assert archived.active is False and archived.id == product.id
    got = stack.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product.id), timeout=15)
    assert got.active is False, "an archived product can still be read"
    invalid(
        rpc_error(
            stack.order_service.CreateOrder,
            orders_pb2.CreateOrderRequest(
                request_id=f"e2e-{uuid.uuid4()}", items=[item(new_product(stack)), item(product)]
            ),
        ),
        "items[1].product_id",
        product.id,
        "archived",
    )
    assert get_order(stack, past.id).items[0].product_id == product.id, (
        "past orders keep the product"
    )
    missing = str(uuid.uuid4())
    not_found(
        rpc_error(
            stack.catalog.ArchiveProduct,
            catalog_pb2.ArchiveProductRequest(product_id=missing),
            metadata=STAFF,
        ),
        missing,
    )
    invalid(
        rpc_error(
            stack.catalog.ArchiveProduct,
            catalog_pb2.ArchiveProductRequest(product_id=""),
            metadata=STAFF,
        ),
        "product_id",
    )


# -- checkout and orders ------------------------------------------------------------------
def test_create_order_prices_from_the_catalogue(stack: Stack) -> None:
    cpf = new_cpf()
    customer = register(stack, cpf)
    burger = new_product(stack, "X-Burger", 2590)
    drink = new_product(stack, "Refri", 690, catalog_pb2.CATEGORY_DRINK)
    order = create_order(stack, [item(burger, 2, "sem cebola"), item(drink, 3)], cpf=formatted(cpf))
    assert order.status == OS.ORDER_STATUS_PENDING_PAYMENT
    assert (
        order.customer_id == customer.id
        and order.number > 0
        and order.request_id.startswith("e2e-")
    )
    assert order.total_centavos == 2 * 2590 + 3 * 690, f"total {order.total_centavos}"
    lines = [
        (
            i.product_id,
            i.name,
            i.category,
            i.unit_price_centavos,
            i.quantity,
            i.notes,
            i.subtotal_centavos,
        )
        for i in order.items
    ]
    assert lines == [
        (burger.id, burger.name, catalog_pb2.CATEGORY_BURGER, 2590, 2, "sem cebola", 5180),
        (drink.id, drink.name, catalog_pb2.CATEGORY_DRINK, 690, 3, "", 2070),
    ], lines
    assert statuses(order) == ["ORDER_STATUS_PENDING_PAYMENT"]
    assert order.history[0].actor == OS.ACTOR_CUSTOMER and order.history[0].HasField("time")
    assert (
        order.HasField("payment_deadline")
        and order.payment_deadline.ToDatetime() > order.create_time.ToDatetime()
    )

    # a later price change does not touch the order
    stack.catalog.UpdateProduct(
        catalog_pb2.UpdateProductRequest(
            product=catalog_pb2.Product(id=burger.id, price_centavos=9990),
            update_mask=field_mask_pb2.FieldMask(paths=["price_centavos"]),
        ),
        metadata=STAFF,
        timeout=15,
    )
    got = get_order(stack, order.id)
    assert got.total_centavos == order.total_centavos and got.items == order.items
    assert (got.id, got.number, got.customer_id, got.status) == (
        order.id,
        order.number,
        order.customer_id,
        order.status,
    )


def test_create_order_retry_returns_the_same_order(stack: Stack) -> None:
    product = new_product(stack)
    request_id = f"kiosk-3:{uuid.uuid4()}"
    first = create_order(stack, [item(product)], request_id=request_id)
    again = create_order(stack, [item(product)], request_id=request_id)
    assert (again.id, again.number, again.total_centavos) == (
        first.id,
        first.number,
        first.total_centavos,
    )
    other = create_order(stack, [item(product)])
    assert other.id != first.id and other.number > first.number, (
        "a new request id is a new, later order"
    )


def test_create_order_errors(stack: Stack) -> None:
    product = new_product(stack)

    def checkout(
        items: list[orders_pb2.CreateOrderItem], cpf: str = "", request_id: str | None = None
    ) -> Any:
        return rpc_error(
            stack.order_service.CreateOrder,
            orders_pb2.CreateOrderRequest(
                request_id=f"e2e-{uuid.uuid4()}" if request_id is None else request_id,
                customer_cpf=cpf,
                items=items,
            ),
        )

    invalid(checkout([]), "items", "empty")
    invalid(checkout([item(product)] * 51), "items", "50")
    invalid(checkout([item(product), item(product, 0)]), "items[1].quantity")
    invalid(checkout([item(product, 100)]), "items[0].quantity")
    invalid(checkout([item(product), item(product, 1, "n" * 141)]), "items[1].notes")
    invalid(
        checkout([orders_pb2.CreateOrderItem(product_id="x-burger", quantity=1)]),
        "items[0].product_id",
    )
    missing = str(uuid.uuid4())
    invalid(
        checkout([item(product), orders_pb2.CreateOrderItem(product_id=missing, quantity=1)]),
        "items[1].product_id",
        missing,
    )
    invalid(checkout([item(product)], request_id=""), "request_id")
    invalid(checkout([item(product)], request_id="has spaces"), "request_id")
    invalid(checkout([item(product)], cpf="123.456.789-00"), "customer_cpf")
    invalid(checkout([item(product)], cpf=new_cpf()), "customer_cpf", "registered")


def test_get_order_errors(stack: Stack) -> None:
    missing = str(uuid.uuid4())
    not_found(
        rpc_error(stack.order_service.GetOrder, orders_pb2.GetOrderRequest(order_id=missing)),
        missing,
    )
    invalid(
        rpc_error(stack.order_service.GetOrder, orders_pb2.GetOrderRequest(order_id="42")),
        "order_id",
    )


def _list_orders(stack: Stack, size: int, **filters: Any) -> list[orders_pb2.Order]:
    found: list[orders_pb2.Order] = []
    token = ""
    for _ in range(100):
        page = stack.order_service.ListOrders(
            orders_pb2.ListOrdersRequest(page_size=size, page_token=token, **filters),
            metadata=STAFF,
            timeout=15,
        )
        assert len(page.orders) <= size
        found.extend(page.orders)
        token = page.next_page_token
        if not token:
            return found
    raise AssertionError("ListOrders pagination does not end")


def _after(ts: timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    later = timestamp_pb2.Timestamp()
    later.FromNanoseconds(ts.ToNanoseconds() + 1000)
    return later


def test_list_orders(stack: Stack) -> None:
    cpf = new_cpf()
    customer = register(stack, cpf)
    product = new_product(stack)
    mine = [create_order(stack, [item(product)], cpf=cpf if i % 2 == 0 else "") for i in range(5)]
    stack.order_service.CancelOrder(orders_pb2.CancelOrderRequest(order_id=mine[1].id), timeout=15)
    window = {"created_after": mine[0].create_time, "created_before": _after(mine[-1].create_time)}

    in_window = _list_orders(stack, 2, **window)
    assert [o.id for o in in_window] == [o.id for o in reversed(mine)], "newest first, pages of 2"
    assert in_window[0].items and in_window[0].history, "listed orders are complete"
    by_customer = _list_orders(stack, 1, customer_id=customer.id)
    assert [o.id for o in by_customer] == [mine[4].id, mine[2].id, mine[0].id]
    cancelled = _list_orders(stack, 10, status=OS.ORDER_STATUS_CANCELLED, **window)
    assert [o.id for o in cancelled] == [mine[1].id]
    later = _list_orders(stack, 10, created_after=mine[3].create_time, customer_id=customer.id)
    assert [o.id for o in later] == [mine[4].id]

    def list_error(**fields: Any) -> grpc.RpcError:
        return rpc_error(
            stack.order_service.ListOrders, orders_pb2.ListOrdersRequest(**fields), metadata=STAFF
        )

    invalid(list_error(page_token="tampered"), "page_token")
    invalid(list_error(page_size=-1), "page_size")
    invalid(list_error(customer_id="someone"), "customer_id")
    invalid(list_error(status=77), "status")
    invalid(
        list_error(created_after=mine[1].create_time, created_before=mine[0].create_time),
        "created_before",
    )


def test_cancel_order(stack: Stack) -> None:
    by_customer = stack.order_service.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=create_order(stack).id, reason="mudei de ideia"),
        timeout=15,
    )
    assert by_customer.status == OS.ORDER_STATUS_CANCELLED
    last = by_customer.history[-1]
    assert (last.status, last.actor, last.reason) == (
        OS.ORDER_STATUS_CANCELLED,
        OS.ACTOR_CUSTOMER,
        "mudei de ideia",
    )
    assert not by_customer.HasField("payment_deadline"), "a cancelled order has no payment deadline"
    by_staff = stack.order_service.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=create_order(stack).id), metadata=STAFF, timeout=15
    )
    assert by_staff.history[-1].actor == OS.ACTOR_STAFF

    again = rpc_error(
        stack.order_service.CancelOrder, orders_pb2.CancelOrderRequest(order_id=by_customer.id)
    )
    precondition_failed(again, "CANCELLED", "cancel")
    missing = str(uuid.uuid4())
    not_found(
        rpc_error(stack.order_service.CancelOrder, orders_pb2.CancelOrderRequest(order_id=missing)),
        missing,
    )
    invalid(
        rpc_error(
            stack.order_service.CancelOrder,
            orders_pb2.CancelOrderRequest(order_id=create_order(stack).id, reason="r" * 201),
        ),
        "reason",
    )


def test_cancel_after_payment_and_not_once_the_kitchen_started(stack: Stack) -> None:
    received = pay(stack, create_order(stack).id)
    cancelled = stack.order_service.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=received.id), timeout=15
    )
    assert statuses(cancelled)[-2:] == ["ORDER_STATUS_RECEIVED", "ORDER_STATUS_CANCELLED"]
    preparing = pay(stack, create_order(stack).id)
    advance(stack, preparing.id, OS.ORDER_STATUS_IN_PREPARATION)
    error = rpc_error(
        stack.order_service.CancelOrder, orders_pb2.CancelOrderRequest(order_id=preparing.id)
    )
    precondition_failed(error, "IN_PREPARATION", "cancel")
    assert get_order(stack, preparing.id).status == OS.ORDER_STATUS_IN_PREPARATION


def test_order_timeline(stack: Stack) -> None:
    order = create_order(stack)

    def created_published() -> Any:
        timeline = stack.order_service.GetOrderTimeline(
            orders_pb2.GetOrderTimelineRequest(order_id=order.id), timeout=15
        )
        return [
            e
            for e in timeline.entries
            if e.event_type == "comanda.events.v1.OrderCreated" and e.outcome == "published"
        ]

    (created,) = wait_for(created_published, 30, "OrderCreated to be published")
    assert (
        created.direction == OS.DIRECTION_EMITTED
        and created.subject == f"orders.v1.order.created.{order.id}"
    )
    assert created.HasField("publish_time")
    pay(stack, order.id)
    timeline = stack.order_service.GetOrderTimeline(
        orders_pb2.GetOrderTimelineRequest(order_id=order.id), timeout=15
    )
    consumed = {
        e.event_type: e.outcome for e in timeline.entries if e.direction == OS.DIRECTION_CONSUMED
    }
    assert consumed.get("comanda.events.v1.PaymentApproved", "").startswith("applied"), consumed
    missing = str(uuid.uuid4())
    not_found(
        rpc_error(
            stack.order_service.GetOrderTimeline,
            orders_pb2.GetOrderTimelineRequest(order_id=missing),
        ),
        missing,
    )


# -- kitchen ------------------------------------------------------------------------------
def test_kitchen_steps_and_queue(stack: Stack) -> None:
    product = new_product(stack)
    orders = [pay(stack, create_order(stack, [item(product)]).id) for _ in range(3)]
    waiting = create_order(stack, [item(product)])
    advance(stack, orders[2].id, OS.ORDER_STATUS_IN_PREPARATION)
    ready = advance(
        stack,
        advance(stack, orders[1].id, OS.ORDER_STATUS_IN_PREPARATION).id,
        OS.ORDER_STATUS_READY,
    )
    assert statuses(ready) == [
        "ORDER_STATUS_PENDING_PAYMENT",
        "ORDER_STATUS_RECEIVED",
        "ORDER_STATUS_IN_PREPARATION",
        "ORDER_STATUS_READY",
    ]
    assert [h.actor for h in ready.history][2:] == [OS.ACTOR_KITCHEN, OS.ACTOR_KITCHEN]

    queue = stack.kitchen.ListKitchenQueue(
        orders_pb2.ListKitchenQueueRequest(), metadata=STAFF, timeout=15
    ).orders
    rank = {
        OS.ORDER_STATUS_READY: 0,
        OS.ORDER_STATUS_IN_PREPARATION: 1,
        OS.ORDER_STATUS_RECEIVED: 2,
    }
    assert all(o.status in rank for o in queue), f"only queue statuses: {[o.status for o in queue]}"
    keys = [(rank[o.status], o.create_time.ToNanoseconds()) for o in queue]
    assert keys == sorted(keys), (
        "READY, then IN_PREPARATION, then RECEIVED, oldest first inside each"
    )
    mine = [o.id for o in queue if o.id in {x.id for x in orders}]
    assert mine == [orders[1].id, orders[2].id, orders[0].id], mine
    assert waiting.id not in [o.id for o in queue], "an unpaid order is not in the queue"

    done = advance(stack, orders[1].id, OS.ORDER_STATUS_COMPLETED)
    assert done.status == OS.ORDER_STATUS_COMPLETED
    queue = stack.kitchen.ListKitchenQueue(
        orders_pb2.ListKitchenQueueRequest(page_size=500), metadata=STAFF, timeout=15
    ).orders
    assert orders[1].id not in [o.id for o in queue], "a completed order leaves the queue"
    invalid(
        rpc_error(
            stack.kitchen.ListKitchenQueue,
            orders_pb2.ListKitchenQueueRequest(page_size=501),
            metadata=STAFF,
        ),
        "page_size",
    )


def test_update_order_status_errors(stack: Stack) -> None:
    pending = create_order(stack)

    def step(order_id: str, status: Status) -> grpc.RpcError:
        return rpc_error(
            stack.kitchen.UpdateOrderStatus,
            orders_pb2.UpdateOrderStatusRequest(order_id=order_id, status=status),
            metadata=STAFF,
        )

    precondition_failed(
        step(pending.id, OS.ORDER_STATUS_IN_PREPARATION), "PENDING_PAYMENT", "IN_PREPARATION"
    )
    precondition_failed(step(pending.id, OS.ORDER_STATUS_RECEIVED), "PENDING_PAYMENT", "RECEIVED")
    received = pay(stack, pending.id)
    precondition_failed(step(received.id, OS.ORDER_STATUS_READY), "RECEIVED", "READY")
    precondition_failed(step(received.id, OS.ORDER_STATUS_COMPLETED), "RECEIVED", "COMPLETED")
    precondition_failed(step(received.id, OS.ORDER_STATUS_CANCELLED), "RECEIVED", "CANCELLED")
    advance(stack, received.id, OS.ORDER_STATUS_IN_PREPARATION)
    # a second terminal pressing the same button
    precondition_failed(
        step(received.id, OS.ORDER_STATUS_IN_PREPARATION), "IN_PREPARATION", "IN_PREPARATION"
    )
    assert statuses(get_order(stack, received.id)).count("ORDER_STATUS_IN_PREPARATION") == 1
    invalid(step(received.id, OS.ORDER_STATUS_UNSPECIFIED), "status")
    invalid(step("nope", OS.ORDER_STATUS_READY), "order_id")
    missing = str(uuid.uuid4())
    not_found(step(missing, OS.ORDER_STATUS_READY), missing)


def test_two_terminals_at_once_one_wins(stack: Stack) -> None:
    order = pay(stack, create_order(stack).id)
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def press(i: int) -> None:
        barrier.wait(10)
        try:
            results[i] = advance(stack, order.id, OS.ORDER_STATUS_IN_PREPARATION)
        except grpc.RpcError as exc:
            results[i] = exc

    threads = [threading.Thread(target=press, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    errors = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(errors) == 1, f"expected exactly one terminal to lose, got {results}"
    precondition_failed(errors[0], "IN_PREPARATION", "IN_PREPARATION")
    assert statuses(get_order(stack, order.id)).count("ORDER_STATUS_IN_PREPARATION") == 1


# -- staff only ---------------------------------------------------------------------------
STAFF_RPCS = [
    ("customers", "GetCustomer", customers_pb2.GetCustomerRequest(customer_id=str(uuid.uuid4()))),
    (
        "customers",
        "EraseCustomer",
        customers_pb2.EraseCustomerRequest(customer_id=str(uuid.uuid4())),
    ),
    (
        "catalog",
        "CreateProduct",
        catalog_pb2.CreateProductRequest(
            product=catalog_pb2.Product(
                name="Hack", category=catalog_pb2.CATEGORY_SIDE, price_centavos=1
            )
        ),
    ),
    (
        "catalog",
        "UpdateProduct",
        catalog_pb2.UpdateProductRequest(
            product=catalog_pb2.Product(id=str(uuid.uuid4()), price_centavos=1),
            update_mask=field_mask_pb2.FieldMask(paths=["price_centavos"]),
        ),
    ),
    ("catalog", "ArchiveProduct", catalog_pb2.ArchiveProductRequest(product_id=str(uuid.uuid4()))),
    ("order_service", "ListOrders", orders_pb2.ListOrdersRequest()),
    ("kitchen", "ListKitchenQueue", orders_pb2.ListKitchenQueueRequest()),
    (
        "kitchen",
        "UpdateOrderStatus",
        orders_pb2.UpdateOrderStatusRequest(
            order_id=str(uuid.uuid4()), status=OS.ORDER_STATUS_IN_PREPARATION
        ),
    ),
]
CREDENTIALS = {
    "no token": (),
    "wrong token": WRONG_STAFF,
    "wrong scheme": (("authorization", f"Basic {STAFF[0][1].split()[1]}"),),
}


@pytest.mark.parametrize(
    ("stub", "method", "request_"), STAFF_RPCS, ids=[m for _, m, _ in STAFF_RPCS]
)
@pytest.mark.parametrize("credentials", list(CREDENTIALS), ids=list(CREDENTIALS))
def test_staff_rpcs_need_the_staff_token(
    stack: Stack, stub: str, method: str, request_: Any, credentials: str
) -> None:
    call = getattr(getattr(stack, stub), method)
    error = rpc_error(call, request_, metadata=CREDENTIALS[credentials])
    details = expect(error, Code.UNAUTHENTICATED, method)
    if credentials == "no token":
        assert "authorization: Bearer <token>" in details, details
    elif credentials == "wrong scheme":
        assert "must be 'Bearer <token>'" in details, details
    else:
        assert "not a well-formed JWT" in details, details


def test_public_rpcs_need_no_token_but_refuse_a_bad_one(stack: Stack) -> None:
    product = new_product(stack)
    order = create_order(stack, [item(product)])
    assert get_order(stack, order.id).id == order.id
    page = stack.catalog.ListProducts(catalog_pb2.ListProductsRequest(), timeout=15)
    assert page.products, "no token needed"
    page = stack.catalog.ListProducts(catalog_pb2.ListProductsRequest(), metadata=STAFF, timeout=15)
    assert page.products, "a valid staff token is fine too"
    error = rpc_error(
        stack.catalog.ListProducts, catalog_pb2.ListProductsRequest(), metadata=WRONG_STAFF
    )
    expect(error, Code.UNAUTHENTICATED, "ListProducts")


# -- WatchOrder ---------------------------------------------------------------------------
class Watcher:
    """Reads a WatchOrder stream in a thread, keeping every message."""

    def __init__(self, stack: Stack, order_id: str) -> None:
        self.call = stack.order_service.WatchOrder(
            orders_pb2.WatchOrderRequest(order_id=order_id), timeout=120
        )
        self.seen: list[orders_pb2.Order] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for message in self.call:
                self.seen.append(message)
        except grpc.RpcError as exc:
            self.error = exc

    def statuses(self) -> list[str]:
        names: list[str] = []
        for message in self.seen:
            name = OS.OrderStatus.Name(message.status)
            if not names or names[-1] != name:
                names.append(name)
        return names

    def wait_status(self, status: Status, timeout: float = 30) -> orders_pb2.Order:
        name = OS.OrderStatus.Name(status)
        found = wait_for(
            lambda: next((m for m in self.seen if m.status == status), None),
            timeout,
            f"WatchOrder to send {name}; statuses so far {self.statuses()}",
        )
        assert found is not None
        return found

    def wait_ended(self, timeout: float = 30) -> None:
        wait_for(
            lambda: not self.thread.is_alive(),
            timeout,
            f"the WatchOrder stream to end; statuses so far {self.statuses()}",
        )


def test_watch_order_follows_the_order_until_completed(stack: Stack) -> None:
    order = create_order(stack)
    watcher = Watcher(stack, order.id)
    first = wait_for(lambda: watcher.seen[:1], 15, "the current state first")[0]
    assert first.id == order.id and first.status == OS.ORDER_STATUS_PENDING_PAYMENT, first
    assert first.items == order.items and first.total_centavos == order.total_centavos

    pay(stack, order.id)
    watcher.wait_status(OS.ORDER_STATUS_RECEIVED)
    for status in (
        OS.ORDER_STATUS_IN_PREPARATION,
        OS.ORDER_STATUS_READY,
        OS.ORDER_STATUS_COMPLETED,
    ):
        advance(stack, order.id, status)
        watcher.wait_status(status)
    watcher.wait_ended()
    assert watcher.error is None, f"the stream should end with OK, got {watcher.error!r}"
    assert watcher.call.code() == Code.OK
    assert watcher.statuses() == [
        "ORDER_STATUS_PENDING_PAYMENT",
        "ORDER_STATUS_RECEIVED",
        "ORDER_STATUS_IN_PREPARATION",
        "ORDER_STATUS_READY",
        "ORDER_STATUS_COMPLETED",
    ], watcher.statuses()
    last = watcher.seen[-1]
    assert last == get_order(stack, order.id), "the last message is the order as stored"
    assert last.payment_status == payment_pb2.PAYMENT_STATUS_APPROVED and last.payment_id
    assert all(a != b for a, b in zip(watcher.seen, watcher.seen[1:], strict=False)), (
        "no message repeats the previous"
    )


def test_watch_order_ends_when_cancelled(stack: Stack) -> None:
    order = create_order(stack)
    watcher = Watcher(stack, order.id)
    watcher.wait_status(OS.ORDER_STATUS_PENDING_PAYMENT)
    stack.order_service.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order.id), timeout=15)
    cancelled = watcher.wait_status(OS.ORDER_STATUS_CANCELLED)
    assert cancelled.history[-1].actor == OS.ACTOR_CUSTOMER
    watcher.wait_ended()
    assert watcher.error is None and watcher.call.code() == Code.OK, watcher.error


def test_watch_order_of_a_finished_order_sends_it_and_ends(stack: Stack) -> None:
    order = create_order(stack)
    stack.order_service.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order.id), timeout=15)
    watcher = Watcher(stack, order.id)
    watcher.wait_ended()
    assert watcher.error is None, watcher.error
    assert watcher.statuses() == ["ORDER_STATUS_CANCELLED"] and len(watcher.seen) == 1


def test_watch_order_starts_with_the_current_state(stack: Stack) -> None:
    order = pay(stack, create_order(stack).id)
    advance(stack, order.id, OS.ORDER_STATUS_IN_PREPARATION)
    watcher = Watcher(stack, order.id)
    first = watcher.wait_status(OS.ORDER_STATUS_IN_PREPARATION)
    assert watcher.seen[0] == first and statuses(first)[-1] == "ORDER_STATUS_IN_PREPARATION"
    advance(stack, order.id, OS.ORDER_STATUS_READY)
    watcher.wait_status(OS.ORDER_STATUS_READY)
    watcher.call.cancel()
    watcher.wait_ended()


def test_watch_order_client_that_leaves_is_let_go(stack: Stack) -> None:
    order = create_order(stack)
    log_before = len(stack.orders[0].log())
    watchers = [Watcher(stack, order.id) for _ in range(3)]
    for watcher in watchers:
        watcher.wait_status(OS.ORDER_STATUS_PENDING_PAYMENT)
    for watcher in watchers[:2]:
        watcher.call.cancel()
    for watcher in watchers[:2]:
        watcher.wait_ended()
        assert watcher.error is not None and watcher.error.code() == Code.CANCELLED
    # the one still watching gets the change; the server is unharmed by those that left
    stack.order_service.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order.id), timeout=15)
    watchers[2].wait_status(OS.ORDER_STATUS_CANCELLED)
    watchers[2].wait_ended()
    assert watchers[2].error is None
    health = health_pb2_grpc.HealthStub(stack.channel("orders")).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    log = stack.orders[0].log()[log_before:]
    problems = [
        line
        for line in log.splitlines()
        if re.search(r'"level": "(error|critical)"|Traceback', line)
    ]
    assert not problems, "clients leaving a WatchOrder stream must not log errors:\n" + "\n".join(
        problems[:5]
    )


def test_watch_order_errors(stack: Stack) -> None:
    missing = str(uuid.uuid4())
    stream = stack.order_service.WatchOrder(
        orders_pb2.WatchOrderRequest(order_id=missing), timeout=15
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stream))
    not_found(caught.value, missing)
    stream = stack.order_service.WatchOrder(
        orders_pb2.WatchOrderRequest(order_id="not-an-id"), timeout=15
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stream))
    invalid(caught.value, "order_id")


# -- reflection and health ----------------------------------------------------------------
def test_reflection_lists_and_describes_the_services(stack: Stack) -> None:
    database = ProtoReflectionDescriptorDatabase(stack.channel("orders"))
    services = set(database.get_services())
    expected = {*SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert expected <= services, f"missing from reflection: {expected - services}"
    pool = descriptor_pool.DescriptorPool(database)
    watch = pool.FindMethodByName("comanda.orders.v1.OrderService.WatchOrder")
    assert watch.output_type.full_name == "comanda.orders.v1.Order"
    create = pool.FindMessageTypeByName("comanda.orders.v1.CreateOrderRequest")
    assert {f.name for f in create.fields} == {"request_id", "customer_cpf", "items"}
    # `grpcurl describe <method>` asks for the file of a method symbol
    found = database.FindFileContainingSymbol("comanda.orders.v1.KitchenService.UpdateOrderStatus")
    assert found.name == "comanda/orders/v1/orders.proto", found.name


def test_health_reports_serving(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel("orders"))
    for service in ["", *SERVICES]:
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, (
            f"{service or 'server'}: {reply.status}"
        )
    error = rpc_error(
        health.Check, health_pb2.HealthCheckRequest(service="comanda.nope.v1.Nothing")
    )
    expect(error, Code.NOT_FOUND)

"""Repositories against real PostgreSQL: aggregates in and out, erasure, archiving, the sample
menu, and the payment-deadline sweeper."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chassis.errors import AlreadyExists, InvalidArgument, NotFound
from orders.domain.model import (
    Actor,
    CartLine,
    Category,
    Customer,
    OrderStatus,
    PaymentStatus,
    Product,
)
from orders.service_layer import catalog, customers, ordering
from orders.service_layer.unit_of_work import UowFactory
from tests.integration.orders.helpers import check_out, move_to, new_product, pay, scalar

CPF = "529.982.247-25"
CPF_DIGITS = "52998224725"


def test_customer_round_trip(uow: UowFactory, orders_engine: sa.Engine) -> None:
    registered = customers.register(uow, CPF, "Ana Souza", "Ana@Example.com")
    with uow() as unit:
        loaded = unit.customers.get(registered.id)
        by_cpf = unit.customers.by_cpf(CPF_DIGITS)
    assert loaded == registered, f"expected {registered}, loaded {loaded}"
    assert by_cpf == registered
    assert (
        scalar(orders_engine, "SELECT cpf FROM customers WHERE id = :id", id=registered.id)
        == CPF_DIGITS
    )
    assert customers.identify(uow, "52998224725") == registered, "bare CPF identifies too"
    assert customers.identify(uow, CPF) == registered
    assert customers.get(uow, registered.id) == registered


def test_duplicate_cpf_already_exists_in_either_spelling(uow: UowFactory) -> None:
    customers.register(uow, CPF, "Ana Souza", "ana@example.com")
    with pytest.raises(AlreadyExists) as caught:
        customers.register(uow, CPF_DIGITS, "Outra Ana", "outra@example.com")
    assert "CPF" in caught.value.message, caught.value.message


def test_unknown_customer_is_not_found(uow: UowFactory) -> None:
    with pytest.raises(NotFound) as caught:
        customers.identify(uow, "111.444.777-35")
    assert "35" in caught.value.message and "11144477735" not in caught.value.message, (
        f"the message should name the CPF without echoing it whole: {caught.value.message!r}"
    )
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound) as caught:
        customers.get(uow, missing)
    assert missing in caught.value.message
    with pytest.raises(NotFound):
        customers.erase(uow, missing)
    with pytest.raises(InvalidArgument) as bad:
        customers.get(uow, "nope")
    assert bad.value.field == "customer_id"


def test_product_round_trip(uow: UowFactory) -> None:
    product = catalog.create(uow, "Onion rings", "Anéis de cebola", Category.SIDE, 1490, 300)
    with uow() as unit:
        loaded = unit.products.get(product.id)
    assert loaded == product, f"expected {product}, loaded {loaded}"
    updated = catalog.update(uow, product.id, {"price_centavos": 1590, "name": "Onion rings G"})
    assert catalog.get(uow, product.id) == updated
    assert (updated.price_centavos, updated.name, updated.description) == (
        1590,
        "Onion rings G",
        "Anéis de cebola",
    )
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound) as caught:
        catalog.get(uow, missing)
    assert missing in caught.value.message
    with pytest.raises(NotFound):
        catalog.update(uow, missing, {"name": "x"})


def test_order_round_trip_with_items_and_history(uow: UowFactory) -> None:
    customer = customers.register(uow, CPF, "Ana Souza", "ana@example.com")
    burger = new_product(uow, "X-Salada", 2790)
    drink = new_product(uow, "Suco", 990, Category.DRINK)
    cart = [CartLine(burger.id, 2, "sem tomate"), CartLine(drink.id, 1, "")]
    created = ordering.check_out(uow, "round-trip-1", CPF_DIGITS, cart, timedelta(minutes=12))
    assert created.number > 0, "the database assigns the number"
    assert created.customer_id == customer.id

    loaded = ordering.get(uow, created.id)
    assert (
        loaded.id,
        loaded.number,
        loaded.customer_id,
        loaded.request_id,
        loaded.status,
        loaded.payment_status,
    ) == (
        created.id,
        created.number,
        customer.id,
        "round-trip-1",
        OrderStatus.PENDING_PAYMENT,
        PaymentStatus.UNSPECIFIED,
    )
    assert loaded.items == created.items, f"items: expected {created.items}, loaded {loaded.items}"
    assert loaded.total_centavos == 2 * 2790 + 990
    assert loaded.history == created.history, (
        f"history: expected {created.history}, loaded {loaded.history}"
    )
    assert (
        loaded.created_at == created.created_at
        and loaded.payment_deadline == created.payment_deadline
    )

    done = move_to(uow, created.id, OrderStatus.COMPLETED)
    reloaded = ordering.get(uow, created.id)
    assert [(h.status, h.actor) for h in reloaded.history] == [
        (OrderStatus.PENDING_PAYMENT, Actor.CUSTOMER),
        (OrderStatus.RECEIVED, Actor.PAYMENT),
        (OrderStatus.IN_PREPARATION, Actor.KITCHEN),
        (OrderStatus.READY, Actor.KITCHEN),
        (OrderStatus.COMPLETED, Actor.KITCHEN),
    ], reloaded.history
    assert reloaded.history == done.history
    assert (reloaded.status, reloaded.payment_status, reloaded.payment_deadline) == (
        OrderStatus.COMPLETED,
        PaymentStatus.APPROVED,
        None,
    )
    assert reloaded.payment_id == done.payment_id and reloaded.payment_id


def test_checkout_errors(uow: UowFactory) -> None:
    burger = new_product(uow)
    with pytest.raises(InvalidArgument) as caught:
        ordering.check_out(
            uow, "e1", "111.444.777-35", [CartLine(burger.id, 1, "")], timedelta(minutes=1)
        )
    assert caught.value.field == "customer_cpf", "an unregistered CPF names customer_cpf"
    missing = str(uuid.uuid4())
    with pytest.raises(InvalidArgument) as caught:
        ordering.check_out(
            uow,
            "e2",
            "",
            [CartLine(burger.id, 1, ""), CartLine(missing, 1, "")],
            timedelta(minutes=1),
        )
    assert caught.value.field == "items[1].product_id" and missing in caught.value.message
    with pytest.raises(NotFound) as nf:
        ordering.get(uow, missing)
    assert missing in nf.value.message
    with pytest.raises(NotFound):
        ordering.cancel(uow, missing, "", by_staff=False)
    with pytest.raises(NotFound):
        ordering.advance(uow, missing, OrderStatus.IN_PREPARATION)
    with pytest.raises(InvalidArgument) as caught:
        ordering.advance(uow, missing, None)
    assert caught.value.field == "status"


def test_lgpd_erasure(uow: UowFactory, orders_engine: sa.Engine) -> None:
    customer = customers.register(uow, CPF, "Ana Souza", "ana@example.com")
    orders = [check_out(uow, customer_cpf=CPF) for _ in range(2)]
    other = customers.register(uow, "111.444.777-35", "Bruno Lima", "bruno@example.com")
    kept = check_out(uow, customer_cpf="11144477735")

    erased = customers.erase(uow, customer.id)
    assert (erased.cpf, erased.name, erased.email) == (None, "", ""), erased
    assert erased.erased_at is not None

    with orders_engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT cpf, name, email, erased_at FROM customers WHERE id = :id"),
            {"id": customer.id},
        ).one()
        leftovers = conn.execute(
            sa.text(
                "SELECT count(*) FROM customers"
                " WHERE cpf = :cpf OR name ILIKE '%Ana%' OR email ILIKE '%ana@%'"
            ),
            {"cpf": CPF_DIGITS},
        ).scalar()
    assert (row.cpf, row.name, row.email) == (None, "", ""), f"personal data left in the row: {row}"
    assert leftovers == 0, "no row may keep Ana's CPF, name or e-mail"

    for order in orders:
        loaded = ordering.get(uow, order.id)
        assert loaded.customer_id is None, f"order {order.id} still points to the erased customer"
        assert loaded.total_centavos == order.total_centavos, "the order stays for accounting"
    assert ordering.get(uow, kept.id).customer_id == other.id, (
        "other customers' orders are untouched"
    )

    again = customers.erase(uow, customer.id)
    assert again.erased_at == erased.erased_at, "erasing twice changes nothing"
    with pytest.raises(NotFound):
        customers.identify(uow, CPF)

    back = customers.register(uow, CPF, "Ana Souza", "ana@example.com")
    assert back.id != customer.id, "registering again makes a new customer"
    assert customers.identify(uow, CPF).id == back.id
    assert check_out(uow, customer_cpf=CPF).customer_id == back.id


def test_archived_product_cannot_be_ordered_and_is_never_deleted(uow: UowFactory) -> None:
    burger = new_product(uow, "X-Bacon", 3190)
    past = check_out(uow, [burger])
    archived = catalog.archive(uow, burger.id)
    assert archived.active is False
    with pytest.raises(InvalidArgument) as caught:
        check_out(uow, [new_product(uow, "Batata", 1290, Category.SIDE), burger])
    assert caught.value.field == "items[1].product_id", caught.value.field
    assert "archived" in caught.value.message and burger.id in caught.value.message
    assert catalog.get(uow, burger.id).active is False, "an archived product can still be read"
    assert ordering.get(uow, past.id).items[0].name == "X-Bacon", "past orders keep their lines"
    active, _ = catalog.list_products(uow, None, False, 100, "")
    assert burger.id not in [p.id for p in active], "archived products are off the menu"
    everything, _ = catalog.list_products(uow, None, True, 100, "")
    assert burger.id in [p.id for p in everything], "include_archived lists them"
    restored = catalog.update(uow, burger.id, {"active": True})
    assert restored.active and check_out(uow, [burger]).items[0].product_id == burger.id


def test_price_change_does_not_touch_past_orders(uow: UowFactory) -> None:
    burger = new_product(uow, "X-Burger", 2590)
    past = check_out(uow, [burger])
    catalog.update(uow, burger.id, {"price_centavos": 2990})
    assert ordering.get(uow, past.id).total_centavos == 2590
    assert check_out(uow, [burger]).total_centavos == 2990


def _menu(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, name, category, price_centavos, active, updated_at FROM products "
                "ORDER BY id"
            )
        )
        return [tuple(r) for r in rows]


def test_seeding_the_sample_menu_twice_changes_nothing(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    assert catalog.seed_sample_menu(uow) == len(catalog.SAMPLE_MENU)
    first = _menu(orders_engine)
    assert len(first) == len(catalog.SAMPLE_MENU)
    assert {r[2] for r in first} == {c.value for c in Category}, "a few products per category"
    assert catalog.seed_sample_menu(uow) == 0, "the second load adds nothing"
    assert _menu(orders_engine) == first, "the second load changes nothing"

    # a product staff changed since keeps its change
    seeded = catalog.SAMPLE_MENU[0][0]
    catalog.update(uow, seeded, {"price_centavos": 2690})
    changed = _menu(orders_engine)
    assert catalog.seed_sample_menu(uow) == 0
    assert _menu(orders_engine) == changed
    assert catalog.get(uow, seeded).price_centavos == 2690


def test_timeout_sweeper_cancels_only_overdue_pending_orders(
    uow: UowFactory, orders_engine: sa.Engine
) -> None:
    burger = new_product(uow)
    overdue = [check_out(uow, [burger], timeout=timedelta(seconds=-60)) for _ in range(2)]
    not_due = check_out(uow, [burger], timeout=timedelta(hours=1))
    received = move_to(
        uow, check_out(uow, [burger], timeout=timedelta(seconds=-60)).id, OrderStatus.RECEIVED
    )
    preparing = move_to(uow, check_out(uow, [burger]).id, OrderStatus.IN_PREPARATION)
    cancelled = move_to(
        uow, check_out(uow, [burger], timeout=timedelta(seconds=-60)).id, OrderStatus.CANCELLED
    )
    # a paid order whose old deadline was somehow left behind must not be swept either
    with orders_engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE orders SET payment_deadline = now() - interval '1 hour' WHERE id = :id"
            ),
            {"id": received.id},
        )

    swept = ordering.time_out_overdue(uow)
    assert swept == 2, f"expected the 2 overdue PENDING_PAYMENT orders to be cancelled, got {swept}"
    for order in overdue:
        loaded = ordering.get(uow, order.id)
        assert loaded.status is OrderStatus.CANCELLED, f"overdue order is {loaded.status.value}"
        assert (loaded.history[-1].actor, loaded.history[-1].status) == (
            Actor.TIMEOUT,
            OrderStatus.CANCELLED,
        )
        cancelled_events = scalar(
            orders_engine,
            "SELECT count(*) FROM outbox"
            " WHERE order_id = :id AND event_type = 'comanda.events.v1.OrderCancelled'",
            id=order.id,
        )
        assert cancelled_events == 1, (
            f"expected one OrderCancelled for {order.id}, found {cancelled_events}"
        )
    expected = {
        not_due.id: OrderStatus.PENDING_PAYMENT,
        received.id: OrderStatus.RECEIVED,
        preparing.id: OrderStatus.IN_PREPARATION,
        cancelled.id: OrderStatus.CANCELLED,
    }
    got = {oid: ordering.get(uow, oid).status for oid in expected}
    assert got == expected, f"only overdue PENDING_PAYMENT orders may change: {got}"
    assert len(ordering.get(uow, cancelled.id).history) == 2, (
        "an already cancelled order gets no new entry"
    )
    assert ordering.time_out_overdue(uow) == 0, "a second sweep finds nothing"


def test_sweeper_and_payment_do_not_both_apply(uow: UowFactory) -> None:
    """A payment approved just before the sweep wins: the order is no longer PENDING_PAYMENT."""
    order = check_out(uow, timeout=timedelta(seconds=-1))
    pay(uow, order.id)
    assert ordering.time_out_overdue(uow) == 0
    assert ordering.get(uow, order.id).status is OrderStatus.RECEIVED


def test_customer_product_domain_objects_survive_equality(uow: UowFactory) -> None:
    """The aggregates read back compare equal field by field (types survive the database)."""
    customer = customers.register(uow, "123.456.789-09", "Caio", "caio@example.com")
    product = new_product(uow, "Sundae", 1190, Category.DESSERT)
    assert isinstance(customers.get(uow, customer.id), Customer)
    loaded = catalog.get(uow, product.id)
    assert isinstance(loaded, Product) and loaded.category is Category.DESSERT
    assert isinstance(loaded.price_centavos, int)

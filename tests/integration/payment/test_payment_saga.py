"""The payment service layer on real PostgreSQL: one payment per order, races between expiry
and approval, out-of-order events, replayed notifications."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chassis.messagebus import MessageBus
from chassis.messaging.schema import outbox
from chassis.outcomes import Outcome, Result
from comanda.events.v1 import events_pb2
from payment.adapters.provider import FakePixProvider
from payment.adapters.tables import payments
from payment.domain.model import PaymentStatus
from payment.service_layer import handlers
from payment.service_layer import payments as use_cases
from payment.service_layer.unit_of_work import PaymentUnitOfWork

SECRET = "it-secret"


@pytest.fixture
def provider() -> FakePixProvider:
    return FakePixProvider(SECRET, "pix@comanda.example", "Comanda", "Sao Paulo")


@pytest.fixture
def uow(payment_engine, provider):
    """Units of work whose effects after commit run as in the service (the provider's
    refund calls among them)."""
    bus = MessageBus[PaymentUnitOfWork](
        handlers.HANDLERS,
        handlers.EFFECTS,
        provider=provider,
        expiry=timedelta(minutes=10),
        auto_approval=lambda: None,
    )
    return lambda: PaymentUnitOfWork(payment_engine, effects=bus.after_commit)


def created(uow, provider, order_id: str, expiry: timedelta = timedelta(minutes=10)) -> Outcome:
    with uow() as u:
        created = events_pb2.OrderCreated(
            event_id=str(uuid.uuid4()), order_id=order_id, total_centavos=2590
        )
        (outcome,) = handlers.order_created([created], u, provider=provider, expiry=expiry)
        u.commit()
    return outcome


def cancelled(order_id: str) -> events_pb2.OrderCancelled:
    return events_pb2.OrderCancelled(event_id=str(uuid.uuid4()), order_id=order_id)


def events(engine, order_id: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.event_type)
            .where(outbox.c.aggregate_id == order_id)
            .order_by(outbox.c.id)
        )
        return [r.event_type.rsplit(".", 1)[-1] for r in rows]


def test_order_created_twice_makes_one_payment(uow, provider, payment_engine):
    order_id = str(uuid.uuid4())
    assert created(uow, provider, order_id).applied
    again = created(uow, provider, order_id)
    assert again.result is Result.IGNORED, again
    with payment_engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).where(payments.c.order_id == order_id)).scalar()
            == 1
        )
    assert events(payment_engine, order_id) == ["PaymentCreated"]


def test_concurrent_order_created_deliveries_make_one_payment(uow, provider, payment_engine):
    order_id = str(uuid.uuid4())
    barrier = threading.Barrier(4)
    outcomes: list[Outcome] = []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(created(uow, provider, order_id))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.applied for o in outcomes) == 1, outcomes
    assert events(payment_engine, order_id) == ["PaymentCreated"]


def test_cancellation_before_creation_opens_no_charge(uow, provider, payment_engine):
    order_id = str(uuid.uuid4())
    with uow() as u:
        outcome = handlers.order_cancelled(cancelled(order_id), u)
        u.commit()
    assert outcome.applied and "recorded as CANCELLED" in str(outcome), outcome
    late = created(uow, provider, order_id)  # the late OrderCreated
    assert late.result is Result.IGNORED, late
    payment = use_cases.for_order(uow, order_id)
    assert payment.status is PaymentStatus.CANCELLED and payment.qr_code == ""
    assert events(payment_engine, order_id) == ["PaymentCancelled"]


def test_expiry_and_approval_racing_exactly_one_wins(uow, provider, payment_engine):
    for _ in range(10):
        order_id = str(uuid.uuid4())
        created(uow, provider, order_id, expiry=timedelta(milliseconds=1))
        payment = use_cases.for_order(uow, order_id)
        body, signature = provider.notification(payment.provider_reference, "approved")
        barrier = threading.Barrier(2)

        def expire(barrier: threading.Barrier) -> None:
            barrier.wait()
            use_cases.expire_overdue(uow)

        def approve(barrier: threading.Barrier, body: bytes, signature: str) -> None:
            barrier.wait()
            use_cases.receive_notification(uow, provider, "fake", body, signature)

        threads = [
            threading.Thread(target=expire, args=(barrier,)),
            threading.Thread(target=approve, args=(barrier, body, signature)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = use_cases.for_order(uow, order_id)
        history = [h.status for h in final.history]
        # Either the approval won (APPROVED), or the expiry won and the approval refunded.
        assert history in (
            [PaymentStatus.PENDING, PaymentStatus.APPROVED],
            [PaymentStatus.PENDING, PaymentStatus.EXPIRED, PaymentStatus.REFUNDED],
        ), history
        emitted = events(payment_engine, order_id)
        assert emitted in (
            ["PaymentCreated", "PaymentApproved"],
            ["PaymentCreated", "PaymentExpired", "PaymentRefunded"],
        ), emitted


def test_a_replayed_notification_changes_nothing(uow, provider, payment_engine):
    order_id = str(uuid.uuid4())
    created(uow, provider, order_id)
    payment = use_cases.for_order(uow, order_id)
    body, signature = provider.notification(
        payment.provider_reference, "rejected", "saldo insuficiente"
    )
    first = use_cases.receive_notification(uow, provider, "fake", body, signature)
    again = use_cases.receive_notification(uow, provider, "fake", body, signature)
    assert (first[0], first[1].status) == (False, PaymentStatus.DECLINED)
    assert (again[0], again[1].status) == (True, PaymentStatus.DECLINED)
    assert events(payment_engine, order_id) == ["PaymentCreated", "PaymentDeclined"]


def test_refund_calls_the_provider_only_after_commit(uow, provider, payment_engine):
    order_id = str(uuid.uuid4())
    created(uow, provider, order_id)
    payment = use_cases.for_order(uow, order_id)
    use_cases.receive_notification(
        uow, provider, "fake", *provider.notification(payment.provider_reference, "approved")
    )
    with uow() as u:
        handlers.order_cancelled(cancelled(order_id), u)
        assert provider.refunds == [], "no provider call before the commit"
        u.rollback()
    assert provider.refunds == [], "a rolled back refund asks the provider nothing"
    with uow() as u:
        handlers.order_cancelled(cancelled(order_id), u)
        u.commit()
    assert provider.refunds == [(payment.provider_reference, 2590)]
    assert use_cases.for_order(uow, order_id).status is PaymentStatus.REFUNDED


def test_auto_approval_approves_only_old_enough_pending_charges(uow, provider):
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    created(uow, provider, old)
    with uow() as u:
        u.connection.execute(
            payments.update()
            .where(payments.c.order_id == old)
            .values(created_at=sa.func.now() - sa.text("interval '1 minute'"))
        )
        u.commit()
    created(uow, provider, fresh)
    assert use_cases.auto_approve(uow, provider, timedelta(seconds=30)) == 1
    assert use_cases.for_order(uow, old).status is PaymentStatus.APPROVED
    assert use_cases.for_order(uow, fresh).status is PaymentStatus.PENDING


def test_a_run_of_order_created_opens_every_new_payment_in_one_statement(
    uow, provider, monkeypatch
):
    """New orders get PENDING payments; a repeated event and an order cancelled before it was
    created (tombstone) are ignored, each with its own outcome, and no charge is issued at the
    provider for them (a real provider's charge is a payable Pix code)."""
    known = str(uuid.uuid4())
    created(uow, provider, known)
    tombstoned = str(uuid.uuid4())
    with uow() as u:
        handlers.order_cancelled(cancelled(tombstoned), u)
        u.commit()
    fresh = [str(uuid.uuid4()) for _ in range(3)]
    events = [
        events_pb2.OrderCreated(event_id=str(uuid.uuid4()), order_id=o, total_centavos=990)
        for o in [fresh[0], known, fresh[1], tombstoned, fresh[2]]
    ]
    charged: list[int] = []
    issue = provider.issue_charge

    def counted(*args, **kwargs):
        charged.append(1)
        return issue(*args, **kwargs)

    monkeypatch.setattr(provider, "issue_charge", counted)
    with uow() as u:
        outcomes = handlers.order_created(events, u, provider=provider, expiry=timedelta(minutes=5))
        u.commit()
    assert [o.applied for o in outcomes] == [True, False, True, False, True]
    assert len(charged) == 3, "a charge for each new order only"
    assert "already has payment" in str(outcomes[1]) and "PENDING" in str(outcomes[1])
    assert "CANCELLED" in str(outcomes[3])
    for order_id in fresh:
        assert use_cases.for_order(uow, order_id).status is PaymentStatus.PENDING

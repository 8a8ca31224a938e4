"""The choreographed saga, end to end: real orders and payment processes, real PostgreSQL and
NATS JetStream. Every test asserts the final state of both services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from comanda.orders.v1 import orders_pb2
from comanda.payment.v1 import payment_pb2
from tests.support.saga import (
    CANCELLED,
    P_APPROVED,
    P_CANCELLED,
    P_DECLINED,
    P_PENDING,
    P_REFUNDED,
    PENDING_PAYMENT,
    RECEIVED,
    checkout,
    deliver,
    get_order,
    history_count,
    new_product,
    notification,
    pay,
    timeline,
    wait_order,
    wait_payment,
)
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def saga(pg, templates) -> Iterator[Stack]:
    stack = Stack(pg, templates, gateway=False)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def product(saga: Stack) -> str:
    return new_product(saga)


def payment_history(payment: payment_pb2.Payment) -> list[int]:
    return [h.status for h in payment.history]


def test_happy_path(saga, product):
    order = checkout(saga, product, quantity=2)
    assert order.status == PENDING_PAYMENT and order.total_centavos == 2 * 2590
    payment = wait_payment(saga, order.id, P_PENDING)
    assert payment.amount_centavos == order.total_centavos, "the charge is the order's total"
    assert payment.qr_code.startswith("000201") and payment.expire_time.seconds > 0
    pay(saga, order.id)
    final = wait_order(saga, order.id, RECEIVED, P_APPROVED)
    assert final.payment_id == payment.id
    assert [h.status for h in final.history] == [PENDING_PAYMENT, RECEIVED]
    assert wait_payment(saga, order.id).status == P_APPROVED
    from tests.support.stack import STAFF

    queue = saga.kitchen.ListKitchenQueue(orders_pb2.ListKitchenQueueRequest(), metadata=STAFF)
    assert order.id in [o.id for o in queue.orders], "a paid order enters the kitchen queue"


def test_declined_payment_cancels_the_order(saga, product):
    order = checkout(saga, product)
    payment = wait_payment(saga, order.id, P_PENDING)
    saga.fake_checkout.DeclineFakeCheckout(
        payment_pb2.DeclineFakeCheckoutRequest(payment_id=payment.id, reason="saldo insuficiente")
    )
    final = wait_order(saga, order.id, CANCELLED, P_DECLINED)
    assert final.history[-1].actor == orders_pb2.ACTOR_PAYMENT
    assert "declined" in final.history[-1].reason
    assert wait_payment(saga, order.id).status == P_DECLINED


def test_cancel_before_paying_cancels_the_payment(saga, product):
    order = checkout(saga, product)
    wait_payment(saga, order.id, P_PENDING)
    saga.order_service.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=order.id, reason="changed my mind")
    )
    payment = wait_payment(saga, order.id, P_CANCELLED)
    assert payment_history(payment) == [P_PENDING, P_CANCELLED]
    wait_order(saga, order.id, CANCELLED, P_CANCELLED)
    with pytest.raises(grpc.RpcError) as err:  # the bank app can no longer pay it
        saga.fake_checkout.PayFakeCheckout(
            payment_pb2.PayFakeCheckoutRequest(payment_id=payment.id)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_cancel_after_paying_refunds(saga, product):
    order = checkout(saga, product)
    pay(saga, order.id)
    wait_order(saga, order.id, RECEIVED, P_APPROVED)
    saga.order_service.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order.id))
    payment = wait_payment(saga, order.id, P_REFUNDED)
    assert payment_history(payment) == [P_PENDING, P_APPROVED, P_REFUNDED]
    final = wait_order(saga, order.id, CANCELLED, P_REFUNDED)
    assert history_count(final, CANCELLED) == 1


def test_approval_after_cancellation_is_refunded(saga, product):
    order = checkout(saga, product)
    payment = wait_payment(saga, order.id, P_PENDING)
    saga.order_service.CancelOrder(orders_pb2.CancelOrderRequest(order_id=order.id))
    wait_payment(saga, order.id, P_CANCELLED)
    reply = deliver(
        saga, *notification(payment.provider_reference, "approved")
    )  # the bank was slower
    assert not reply.duplicate and reply.status == P_REFUNDED
    final_payment = wait_payment(saga, order.id, P_REFUNDED)
    assert payment_history(final_payment) == [P_PENDING, P_CANCELLED, P_REFUNDED]
    wait_order(saga, order.id, CANCELLED, P_REFUNDED)


def test_the_same_webhook_five_times_has_one_effect(saga, product):
    order = checkout(saga, product)
    payment = wait_payment(saga, order.id, P_PENDING)
    body, signature = notification(payment.provider_reference, "approved")
    replies = [deliver(saga, body, signature) for _ in range(5)]
    assert [r.duplicate for r in replies] == [False, True, True, True, True]
    assert {r.status for r in replies} == {P_APPROVED}
    final = wait_order(saga, order.id, RECEIVED, P_APPROVED)
    assert history_count(final, RECEIVED) == 1
    assert payment_history(wait_payment(saga, order.id)) == [P_PENDING, P_APPROVED]
    approved = [e for e in timeline(saga, order.id) if e.event_type.endswith("PaymentApproved")]
    assert len(approved) == 1, f"one PaymentApproved expected, got {approved}"


def test_bad_signatures_are_rejected_and_change_nothing(saga, product):
    order = checkout(saga, product)
    payment = wait_payment(saga, order.id, P_PENDING)
    body, signature = notification(payment.provider_reference, "approved")
    for bad_body, bad_signature in [
        (body + b" ", signature),
        (body, signature.replace("v1=", "v1=0")),
        (body, "ts=1,v1=" + signature.split("v1=")[1]),
        (body, ""),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            deliver(saga, bad_body, bad_signature)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()
    assert wait_payment(saga, order.id).status == P_PENDING
    assert get_order(saga, order.id).status == PENDING_PAYMENT


def test_many_orders_concurrently(saga, product):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        orders = list(pool.map(lambda _: checkout(saga, product), range(24)))
        list(pool.map(lambda o: pay(saga, o.id), orders))
    for order in orders:
        final = wait_order(saga, order.id, RECEIVED, P_APPROVED)
        assert history_count(final, RECEIVED) == 1


def test_unknown_reference_in_a_signed_notification_is_not_found(saga):
    with pytest.raises(grpc.RpcError) as err:
        deliver(saga, *notification(f"fake-{uuid.uuid4().hex}", "approved"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "own_stack",
    [{"gateway": False, "env": {"FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "1.5"}}],
    indirect=True,
)
def test_the_fake_providers_auto_approval_comes_when_the_charge_is_due(own_stack):
    """The demo mode approves a charge `FAKE_PROVIDER_AUTO_APPROVE_SECONDS` after issuing it: the
    worker that issued it wakes then (its once-a-second sweep alone would approve it at 2 s)."""
    order = checkout(own_stack, new_product(own_stack))
    wait_order(own_stack, order.id, RECEIVED, P_APPROVED)
    payment = wait_payment(own_stack, order.id, P_APPROVED)
    issued, approved = (h.time.ToNanoseconds() / 1e9 for h in payment.history)
    assert payment_history(payment) == [P_PENDING, P_APPROVED]
    assert 1.5 <= approved - issued < 1.9, f"approved {approved - issued:.2f} s after issue"

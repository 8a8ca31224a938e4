"""The saga under faults: expiry, redelivery, crashes between commit and publish or ack,
poison messages and dead letters, NATS away, two replicas of each service. Each test has its
own stack, so it may kill and restart its processes."""

from __future__ import annotations

import functools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
import pytest

from chassis.messaging import deadletter
from chassis.messaging.consumer import DLQ_CONSUMER, DLQ_DELIVERIES, DLQ_REASON, DLQ_SUBJECT
from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from comanda.payment.v1 import payment_pb2
from tests.support.saga import (
    CANCELLED,
    ORDER,
    P_APPROVED,
    P_EXPIRED,
    P_PENDING,
    P_REFUNDED,
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
    with_nats,
)
from tests.support.stack import STAFF, Stack
from tests.support.waiting import wait_for


def events_of(stack: Stack, order_id: str, suffix: str) -> list[orders_pb2.TimelineEntry]:
    return [e for e in timeline(stack, order_id) if e.event_type.endswith(suffix)]


@pytest.mark.parametrize("own_stack", [{"env": {"PAYMENT_EXPIRY_SECONDS": "1.5"}}], indirect=True)
def test_expired_payment_cancels_the_order_and_a_late_approval_is_refunded(own_stack):
    product = new_product(own_stack)
    order = checkout(own_stack, product)
    payment = wait_payment(own_stack, order.id, P_PENDING)
    final = wait_order(own_stack, order.id, CANCELLED, P_EXPIRED, timeout=20)
    assert final.history[-1].reason == "payment expired"
    assert wait_payment(own_stack, order.id).status == P_EXPIRED
    reply = deliver(own_stack, *notification(payment.provider_reference, "approved"))
    assert reply.status == P_REFUNDED, "an approval after expiry gives the money back"
    wait_order(own_stack, order.id, CANCELLED, P_REFUNDED)


@pytest.mark.parametrize(
    "own_stack", [{"gateway": False, "env": {"PAYMENT_EXPIRY_SECONDS": "2"}}], indirect=True
)
def test_an_expiry_passed_while_payment_was_down_is_enforced_on_restart(own_stack):
    product = new_product(own_stack)
    order = checkout(own_stack, product)
    payment = wait_payment(own_stack, order.id, P_PENDING)
    down = [own_stack.payment[0], own_stack.payment_workers[0]]
    for proc in down:
        proc.stop()
    expiry = payment.expire_time.ToDatetime(tzinfo=UTC)
    wait_for(
        lambda: datetime.now(UTC) > expiry, 10, "the charge's expiry to pass while payment is down"
    )
    for proc in down:
        proc.start()
    final = wait_order(own_stack, order.id, CANCELLED, P_EXPIRED, timeout=20)
    assert final.history[-1].reason == "payment expired"
    assert wait_payment(own_stack, order.id).status == P_EXPIRED


@pytest.mark.parametrize("own_stack", [{"gateway": False}], indirect=True)
def test_a_redelivered_event_changes_nothing(own_stack):
    product = new_product(own_stack)
    order = checkout(own_stack, product)
    pay(own_stack, order.id)
    wait_order(own_stack, order.id, RECEIVED, P_APPROVED)
    payment_id = wait_payment(own_stack, order.id).id

    async def redeliver(nc):  # the same events again, past JetStream's duplicate window
        js = nc.jetstream()
        for subject in (
            f"payments.v1.payment.approved.{order.id}",
            f"orders.v1.order.created.{order.id}",
        ):
            original = await js.get_last_msg(
                "PAYMENTS" if subject.startswith("payments") else "ORDERS", subject
            )
            headers = dict(original.headers or {})
            headers["Nats-Msg-Id"] = headers["Nats-Msg-Id"] + ":again"
            await js.publish(subject, original.data, headers=headers)

    with_nats(own_stack.nats.url, redeliver)

    async def consumers_idle(nc):
        js = nc.jetstream()
        infos = [
            await js.consumer_info("PAYMENTS", "orders-payment-events"),
            await js.consumer_info("ORDERS", "payment-order-events"),
        ]
        return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

    wait_for(
        lambda: with_nats(own_stack.nats.url, consumers_idle),
        15,
        "both consumers to ack everything",
    )
    final = get_order(own_stack, order.id)
    assert history_count(final, RECEIVED) == 1
    assert len(events_of(own_stack, order.id, "PaymentApproved")) == 1, (
        "the inbox keeps one row per event"
    )
    assert wait_payment(own_stack, order.id).id == payment_id, "still one payment for the order"
    listed = own_stack.payments.ListPayments(payment_pb2.ListPaymentsRequest(), metadata=STAFF)
    assert [p.order_id for p in listed.payments].count(order.id) == 1


@pytest.mark.parametrize("own_stack", [{"gateway": False}], indirect=True)
def test_orders_killed_between_commit_and_publish_publishes_after_restart(own_stack):
    product = new_product(own_stack)
    orders = own_stack.orders[0]
    orders.restart(failpoints="outbox.after_commit")
    request = orders_pb2.CreateOrderRequest(
        request_id="crash-1", items=[orders_pb2.CreateOrderItem(product_id=product, quantity=1)]
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{orders.port}")
    with pytest.raises(grpc.RpcError):  # the process died right after the commit
        orders_pb2_grpc.OrderServiceStub(channel).CreateOrder(request, timeout=10)
    channel.close()
    wait_for(lambda: not orders.running, 10, "the orders process to crash")
    assert orders.proc is not None and orders.proc.returncode == 137
    orders.restart()
    order = own_stack.order_service.CreateOrder(request)  # the retry finds the committed order
    assert order.number == 1
    payment = wait_payment(own_stack, order.id, P_PENDING)  # OrderCreated was published after all
    assert payment.amount_centavos == order.total_centavos
    created = events_of(own_stack, order.id, "OrderCreated")
    assert len(created) == 1 and created[0].outcome == "published"


@pytest.mark.parametrize(
    "own_stack", [{"gateway": False, "env": {"CONSUMER_ACK_WAIT_SECONDS": "3"}}], indirect=True
)
def test_consumer_killed_after_commit_before_ack_applies_once(own_stack):
    product = new_product(own_stack)
    payment_proc = own_stack.payment_workers[0]
    payment_proc.restart(failpoints="consumer.after_commit")
    order = checkout(own_stack, product)
    wait_for(lambda: not payment_proc.running, 15, "the payment process to crash after its commit")
    payment_proc.restart()  # OrderCreated is redelivered (never acked): the inbox recognises it
    payment = wait_payment(own_stack, order.id, P_PENDING)
    created = wait_for(
        lambda: events_of(own_stack, order.id, "PaymentCreated"),
        15,
        "PaymentCreated in the timeline",
    )
    assert len(created) == 1, f"one PaymentCreated expected: {created}"

    async def acked(nc):
        info = await nc.jetstream().consumer_info("ORDERS", "payment-order-events")
        redelivered = (
            info.delivered.consumer_seq > info.delivered.stream_seq
        )  # two deliveries of one message
        return info.num_ack_pending == 0 and info.ack_floor.stream_seq == 1 and redelivered

    wait_for(
        lambda: with_nats(own_stack.nats.url, acked), 20, "the redelivered OrderCreated to be acked"
    )
    assert wait_payment(own_stack, order.id).id == payment.id


@pytest.mark.parametrize("own_stack", [{"gateway": False}], indirect=True)
def test_poison_message_is_dead_lettered_and_the_rest_flows(own_stack):
    product = new_product(own_stack)
    victim = checkout(own_stack, product)
    wait_payment(own_stack, victim.id, P_PENDING)
    subject = f"payments.v1.payment.approved.{victim.id}"

    async def poison(nc):
        await nc.jetstream().publish(
            subject,
            b"\x08\xff\xff garbage",
            headers={
                "Comanda-Event-Type": "comanda.events.v1.PaymentApproved",
                "Nats-Msg-Id": "poison-1",
            },
        )

    with_nats(own_stack.nats.url, poison)
    order = checkout(own_stack, product)  # later messages still flow
    pay(own_stack, order.id)
    wait_order(own_stack, order.id, RECEIVED, P_APPROVED)

    letters = wait_for(
        lambda: with_nats(own_stack.nats.url, deadletter.list_dead_letters), 15, "a dead letter"
    )
    (letter,) = letters
    assert letter.subject == subject
    assert letter.consumer == "orders-payment-events"
    assert "corrupt" in letter.reason
    assert letter.deliveries == 1, "an undecodable message is not retried"
    assert {DLQ_REASON, DLQ_SUBJECT, DLQ_DELIVERIES, DLQ_CONSUMER} <= set(letter.headers)
    assert get_order(own_stack, victim.id).status == ORDER.Value("ORDER_STATUS_PENDING_PAYMENT")


@pytest.mark.parametrize(
    "own_stack", [{"gateway": False, "env": {"CONSUMER_MAX_DELIVER": "2"}}], indirect=True
)
def test_failing_consumer_dead_letters_then_replay_applies(own_stack):
    product = new_product(own_stack)
    orders = own_stack.orders_workers[0]
    orders.restart(failpoints="consumer.handler")
    order = checkout(own_stack, product)
    pay(own_stack, order.id)

    def dead_letters():
        return [
            d
            for d in with_nats(own_stack.nats.url, deadletter.list_dead_letters)
            if d.subject == f"payments.v1.payment.approved.{order.id}"
        ]

    (letter,) = wait_for(dead_letters, 30, "PaymentApproved to be dead-lettered after 2 deliveries")
    assert letter.deliveries == 2 and "failpoint consumer.handler" in letter.reason
    assert get_order(own_stack, order.id).status == ORDER.Value("ORDER_STATUS_PENDING_PAYMENT")

    orders.restart()  # the cause is fixed; now replay
    replayed = with_nats(
        own_stack.nats.url, lambda nc: deadletter.replay(nc, "orders-payment-events")
    )
    assert replayed >= 1
    wait_order(own_stack, order.id, RECEIVED, P_APPROVED)
    assert not dead_letters(), "a replayed dead letter leaves the dead-letter stream"


@pytest.mark.parametrize(
    "own_stack",
    [{"gateway": False, "env": {"FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0"}}],
    indirect=True,
)
def test_nats_away_for_a_while_then_every_saga_completes(own_stack):
    product = new_product(own_stack)
    own_stack.nats.kill()
    orders = [checkout(own_stack, product) for _ in range(10)]  # checkouts still accepted
    assert all(o.status == ORDER.Value("ORDER_STATUS_PENDING_PAYMENT") for o in orders)
    time.sleep(2)
    own_stack.nats.restart()
    for order in orders:
        final = wait_order(own_stack, order.id, RECEIVED, P_APPROVED, timeout=60)
        assert history_count(final, RECEIVED) == 1


@pytest.mark.parametrize(
    "own_stack",
    [{"gateway": False, "replicas": 2, "env": {"FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0"}}],
    indirect=True,
)
def test_two_replicas_of_each_service_pay_each_order_once(own_stack):
    product = new_product(own_stack)
    with ThreadPoolExecutor(8) as pool:
        orders = list(
            pool.map(lambda i: checkout(own_stack, product, orders_index=i % 2), range(40))
        )
    for order in orders:
        final = wait_order(own_stack, order.id, RECEIVED, P_APPROVED, timeout=60)
        assert history_count(final, RECEIVED) == 1
        payment = wait_payment(own_stack, order.id)
        assert [h.status for h in payment.history] == [P_PENDING, P_APPROVED]

        def consumed(order_id: str = order.id) -> list[str]:
            return [
                e.event_id
                for e in timeline(own_stack, order_id)
                if e.direction == orders_pb2.DIRECTION_CONSUMED
            ]

        # Two payment relays may publish PaymentApproved before PaymentCreated, which then
        # arrives after the order is RECEIVED (and is ignored): wait for it, then count.
        wait_for(lambda: len(set(consumed())) >= 2, 30, "orders to consume PaymentCreated too")
        assert len(consumed()) == len(set(consumed())) == 2, (
            f"PaymentCreated and PaymentApproved once each: {consumed()}"
        )
    listed = own_stack.payments.ListPayments(
        payment_pb2.ListPaymentsRequest(page_size=100),
        metadata=STAFF,
    )
    assert sorted(p.order_id for p in listed.payments) == sorted(o.id for o in orders), (
        "one payment per order"
    )


@pytest.mark.parametrize(
    "own_stack",
    [
        {
            "gateway": False,
            "env": {
                "CONSUMER_MAX_DELIVER": "2",
                "CONSUMER_ACK_WAIT_SECONDS": "2",
                "FAKE_PROVIDER_AUTO_APPROVE_SECONDS": "0",
            },
        }
    ],
    indirect=True,
)
def test_database_away_longer_than_the_retries_dead_letters_nothing(own_stack, pg):
    """A consumer whose database is down keeps its messages (in progress) and waits, instead of
    burning their deliveries: an outage four times the ack wait costs none."""
    assert pg.embedded is not None, "this test stops PostgreSQL: it needs the embedded one"
    product = new_product(own_stack)
    payment = own_stack.payment_workers[0]
    payment.pause()
    orders = [checkout(own_stack, product) for _ in range(5)]

    def published(order_id: str) -> bool:
        return events_of(own_stack, order_id, "OrderCreated")[0].outcome == "published"

    for order in orders:  # OrderCreated is in JetStream, waiting for the frozen payment service
        wait_for(functools.partial(published, order.id), 15, "OrderCreated to be published")
    pg.kill()
    payment.resume()  # it fetches the events while its database is away
    time.sleep(8)  # the outage itself: longer than 2 deliveries and their retry delays
    pg.restart()
    for order in orders:
        wait_order(own_stack, order.id, RECEIVED, P_APPROVED, timeout=60)
    assert with_nats(own_stack.nats.url, deadletter.list_dead_letters) == []

    def consumed_lines() -> list[dict] | None:
        found = [
            entry
            for entry in map(json.loads, payment.log().splitlines())
            if entry.get("consumer") == "payment-order-events" and "deliveries" in entry
        ]
        return found if len(found) >= len(orders) else None

    # (log lines reach the file within a fifth of a second)
    consumed = wait_for(consumed_lines, 5, "a 'consumed' log line per order in payment's log")
    assert {entry["deliveries"] for entry in consumed} == {1}, "each applied at first delivery"

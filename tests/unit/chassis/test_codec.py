from datetime import UTC, datetime

import pytest

from chassis.messaging import codec
from chassis.messaging.codec import EventCodec
from comanda.events.v1 import events_pb2
from comanda.orders.v1 import orders_pb2
from orders.domain import events
from orders.domain.model import Actor, Category, OrderStatus

CODEC = EventCodec(events_pb2, aggregate_field="order_id")


def test_a_domain_event_becomes_its_protobuf_message_and_subject():
    when = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    event = events.OrderCreated(
        order_id="o-1",
        order_number=7,
        customer_id="",
        total_centavos=2590,
        payment_deadline=when,
        items=[events.OrderLine("p-1", "X-Burger", Category.BURGER, 2590, 1)],
    )
    envelope = CODEC.encode(event)
    assert envelope.subject == "orders.v1.order.created.o-1"
    assert envelope.event_type == "comanda.events.v1.OrderCreated"
    assert envelope.aggregate_id == "o-1"
    message = CODEC.decode(envelope.event_type, envelope.payload)
    assert isinstance(message, events_pb2.OrderCreated)
    assert (message.event_id, message.order_number, message.total_centavos) == (
        event.event_id,
        7,
        2590,
    )
    assert message.items[0].name == "X-Burger"
    assert message.items[0].category == 1  # CATEGORY_BURGER
    assert message.payment_deadline.ToDatetime(tzinfo=UTC) == when


def test_enums_map_by_name():
    event = events.OrderStatusChanged(
        order_id="o",
        from_status=OrderStatus.PENDING_PAYMENT,
        to_status=OrderStatus.RECEIVED,
        actor=Actor.PAYMENT,
    )
    message = CODEC.decode("comanda.events.v1.OrderStatusChanged", CODEC.encode(event).payload)
    assert message.to_status == orders_pb2.ORDER_STATUS_RECEIVED
    assert message.actor == orders_pb2.ACTOR_PAYMENT


@pytest.mark.parametrize(
    ("event_type", "payload", "reason"),
    [
        ("", b"", "missing"),
        ("comanda.events.v1.NoSuchEvent", b"", "unknown event type"),
        ("comanda.events.v1.OrderLine", b"", "unknown event type"),  # a message, but not an event
        ("comanda.events.v1.OrderCreated", b"\xff\xff\xff", "corrupt"),
        ("comanda.events.v1.OrderCreated", b"", "without event_id or order_id"),
    ],
)
def test_undecodable_messages_are_recognised(event_type, payload, reason):
    with pytest.raises(codec.UndecodableEvent) as err:
        CODEC.decode(event_type, payload)
    assert reason in str(err.value)


def test_the_codec_knows_the_events_of_the_module_it_is_given():
    assert CODEC.subject(events_pb2.PaymentApproved) == "payments.v1.payment.approved"
    assert events_pb2.OrderLine not in CODEC.message_types, "a message without a subject"
    with pytest.raises(TypeError):
        CODEC.subject(events_pb2.OrderLine)
    with pytest.raises(TypeError):
        EventCodec(events_pb2, aggregate_field="customer_cpf")  # not a field of every event

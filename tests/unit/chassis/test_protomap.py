"""Domain values to protobuf: timestamps exactly as protobuf's own `FromDatetime` makes them,
and enum numbers by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from chassis.protomap import enum_from_proto, enum_to_proto, timestamp
from comanda.orders.v1 import orders_pb2
from orders.domain.model import OrderStatus

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=5, minutes=30))]
)


@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.one_of(st.none(), ZONES),
)
def test_a_timestamp_is_what_protobuf_makes_of_the_datetime(value: datetime, zone) -> None:
    if zone is not None:
        value = value.replace(tzinfo=zone)
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    assert timestamp(value) == expected


def test_no_datetime_is_no_timestamp() -> None:
    assert timestamp(None) is None


def test_enum_numbers_by_name_both_ways() -> None:
    for status in OrderStatus:
        number = enum_to_proto(orders_pb2.OrderStatus, status)
        assert orders_pb2.OrderStatus.Name(number) == f"ORDER_STATUS_{status.name}"
        assert enum_to_proto(orders_pb2.OrderStatus, status) == number  # from the cache
        assert enum_from_proto(orders_pb2.OrderStatus, number, OrderStatus, "status") is status
    assert enum_to_proto(orders_pb2.OrderStatus, None) == 0

"""The compiled JSON writer gives exactly what json_format gives."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from google.protobuf import json_format, timestamp_pb2
from google.rpc import status_pb2
from hypothesis import given
from hypothesis import strategies as st

from comanda.orders.v1 import catalog_pb2, orders_pb2
from comanda.payment.v1 import payment_pb2
from gateway import protojson
from tests.gateway import synthetic


def _order() -> orders_pb2.Order:
    order = orders_pb2.Order(
        id="o1",
        number=2**53 + 1,
        customer_id="c1",
        total_centavos=-5,
        status=orders_pb2.ORDER_STATUS_READY,
        request_id="r",
    )
    order.items.add(
        product_id="p",
        name="X-Búrguer 🍔",
        category=catalog_pb2.CATEGORY_BURGER,
        unit_price_centavos=2590,
        quantity=2,
        subtotal_centavos=5180,
        notes='sem "cebola"',
    )
    order.items.add()
    order.history.add(status=orders_pb2.ORDER_STATUS_RECEIVED, reason="paid").time.FromJsonString(
        "2026-01-02T03:04:05.123456789Z"
    )
    order.create_time.FromJsonString("1970-01-01T00:00:00Z")
    return order


def _shelf() -> Any:
    shelf = synthetic.Shelf(
        name="n",
        tags=["a", "", "ç"],
        open=True,
        book_count=-(2**63),
        color=2,
        ratio=0.1,
        blob=b"\x00\xff\xfe",
        note="",
        weight=0.1,
        count32=2**32 - 1,
        colors=[0, 1, 2, 7],
    )
    shelf.filter.sizes.extend([1, -2])
    shelf.filter.inner.kind = "deep"
    shelf.filters.add(kind="k")
    shelf.labels["x"] = 3
    shelf.labels[""] = -1
    shelf.flags[True].kind = "yes"
    shelf.flags[False].CopyFrom(synthetic.Filter())
    shelf.since.FromJsonString("2026-05-06T07:08:09.010Z")
    shelf.flag.value = False
    shelf.extra.update({"a": [1, "b", None, True], "n": {"m": 1.5}})
    return shelf


MESSAGES = {
    "empty order": orders_pb2.Order(),
    "full order": _order(),
    "list": orders_pb2.ListOrdersResponse(
        orders=[_order(), orders_pb2.Order()], next_page_token="t"
    ),
    "payment": payment_pb2.Payment(
        id="p", amount_centavos=1, status=payment_pb2.PAYMENT_STATUS_REFUNDED
    ),
    "timeline": orders_pb2.OrderTimeline(
        entries=[orders_pb2.TimelineEntry(direction=orders_pb2.DIRECTION_CONSUMED, event_id="e")]
    ),
    "every field kind": _shelf(),
    "empty shelf": synthetic.Shelf(),
    "unknown enum number": orders_pb2.Order(status=orders_pb2.OrderStatus.ValueType(99)),
    "status": status_pb2.Status(code=3, message="m"),
}


@pytest.mark.parametrize("name", MESSAGES)
def test_same_as_json_format(name):
    message = MESSAGES[name]

    expected = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    got = protojson.to_dict(message)

    assert got == expected


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 1e300, -0.0, 3.4e38])
def test_floats_as_json_format_writes_them(value):
    shelf = synthetic.Shelf(ratio=value, weight=value if abs(value) < 1e39 else 0)

    expected = json_format.MessageToDict(shelf, always_print_fields_with_no_presence=True)
    got = protojson.to_dict(shelf)

    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_dumps_is_compact_utf8():
    assert protojson.dumps({"a": "é", "b": [1]}) == '{"a":"é","b":[1]}'.encode()


@given(
    seconds=st.integers(-62_135_596_800, 253_402_300_799),
    nanos=st.one_of(
        st.integers(0, 999_999_999),
        st.integers(0, 999).map(lambda n: n * 1_000_000),
        st.integers(0, 999_999).map(lambda n: n * 1_000),
    ),
)
def test_timestamps_as_json_format_writes_them(seconds, nanos):
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)

    assert protojson.timestamp_string(stamp) == stamp.ToJsonString()


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(-62_135_596_801, 0), (253_402_300_800, 0), (0, -1), (0, 10**9)]
)
def test_a_timestamp_out_of_range_is_refused_as_json_format_refuses_it(seconds, nanos):
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)

    with pytest.raises(ValueError):
        stamp.ToJsonString()
    with pytest.raises(ValueError):
        protojson.timestamp_string(stamp)

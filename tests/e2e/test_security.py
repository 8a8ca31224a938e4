"""The production path, attacked: what a deployment without the development conveniences
refuses, over direct gRPC and through the gateway."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import grpc
import httpx
import jwt
import pytest

from chassis import tokens
from comanda.orders.v1 import orders_pb2
from comanda.payment.v1 import payment_pb2
from gateway import bindings
from tests.support.saga import (
    CANCELLED,
    P_APPROVED,
    P_REFUNDED,
    RECEIVED,
    checkout,
    get_order,
    new_product,
    pay,
    timeline,
    wait_order,
    wait_payment,
)
from tests.support.stack import JWT_SECRET, Stack
from tests.support.waiting import wait_for


@pytest.mark.parametrize(
    "own_stack", [{"gateway": True, "env": {"PAYMENT_FAKE_CHECKOUT": "false"}}], indirect=True
)
def test_without_the_fake_checkout_nobody_pays_for_free(own_stack: Stack):
    order = checkout(own_stack, new_product(own_stack))
    payment = wait_payment(own_stack, order.id)
    with pytest.raises(grpc.RpcError) as caught:
        own_stack.fake_checkout.PayFakeCheckout(
            payment_pb2.PayFakeCheckoutRequest(payment_id=payment.id)
        )
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "PAYMENT_FAKE_CHECKOUT" in (caught.value.details() or "")

    for action in ("pay", "decline"):
        response = httpx.post(
            f"{own_stack.gateway_url}/v1/fake-checkout/{payment.id}:{action}", json={}
        )
        assert response.status_code == 501, response.text
        assert "PAYMENT_FAKE_CHECKOUT" in response.json()["message"]
    still = wait_payment(own_stack, order.id)
    assert still.status == payment_pb2.PAYMENT_STATUS_PENDING, "nothing was paid"


# -- every staff RPC, attacked over direct gRPC ----------------------------------------------

STAFF_RPCS = [rpc for rpc in bindings.rpcs() if rpc.access.staff]


def claims(roles, exp=3600, **extra) -> dict:
    now = int(time.time())
    return {
        "sub": "mallory",
        "roles": list(roles),
        "iss": tokens.DEV_ISSUER,
        "aud": tokens.AUDIENCE,
        "iat": now,
        "exp": now + exp,
        **extra,
    }


def token(roles, secret=JWT_SECRET, exp=3600, **extra) -> str:
    return jwt.encode(claims(roles, exp, **extra), secret, algorithm="HS256")


def unsigned(roles) -> str:
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(roles))}."


def attacks(rpc) -> list[tuple[str, str | None, grpc.StatusCode]]:
    """(what, authorization header, the code it must get)."""
    right = list(rpc.access.roles)
    wrong = [r for r in ("kitchen", "manager", "customer") if r not in right][:1]
    return [
        ("no token", None, grpc.StatusCode.UNAUTHENTICATED),
        ("not a bearer", "Basic bWFsbG9yeTpzZWNyZXQ=", grpc.StatusCode.UNAUTHENTICATED),
        ("garbage", "Bearer not.a.jwt", grpc.StatusCode.UNAUTHENTICATED),
        (
            "forged",
            f"Bearer {token(right, secret='a-guessed-secret-0123456789abcdef0123')}",
            grpc.StatusCode.UNAUTHENTICATED,
        ),
        ("alg none", f"Bearer {unsigned(right)}", grpc.StatusCode.UNAUTHENTICATED),
        ("expired", f"Bearer {token(right, exp=-3600)}", grpc.StatusCode.UNAUTHENTICATED),
        ("other issuer", f"Bearer {token(right, iss='evil')}", grpc.StatusCode.UNAUTHENTICATED),
        ("wrong role", f"Bearer {token(wrong)}", grpc.StatusCode.PERMISSION_DENIED),
        ("no roles", f"Bearer {token([])}", grpc.StatusCode.PERMISSION_DENIED),
    ]


@pytest.mark.parametrize("rpc", STAFF_RPCS, ids=[rpc.label for rpc in STAFF_RPCS])
def test_every_staff_rpc_refuses_missing_forged_expired_and_wrong_role_tokens(stack: Stack, rpc):
    channel = stack.channel(rpc.backend)
    call: Any = (channel.unary_stream if rpc.server_streaming else channel.unary_unary)(
        rpc.path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=rpc.response.FromString,
    )
    for what, header, expected in attacks(rpc):
        metadata = (("authorization", header),) if header else ()
        with pytest.raises(grpc.RpcError) as caught:
            result = call(rpc.request(), metadata=metadata, timeout=10)
            if rpc.server_streaming:
                list(result)
        got = caught.value
        assert got.code() == expected, f"{rpc.label} with {what}: {got.code()} {got.details()}"
        details = got.details() or ""
        assert rpc.label.rsplit(".", 1)[-1] in details, f"{what}: {details}"
        if header:
            secret_part = header.partition(" ")[2]
            assert secret_part not in details, f"{what}: the token was echoed"
    # With the right role it gets past the door (and then answers about the request itself).
    right = (("authorization", f"Bearer {token(rpc.access.roles)}"),)
    try:
        result = call(rpc.request(), metadata=right, timeout=10)
        if rpc.server_streaming:
            list(result)
    except grpc.RpcError as exc:
        assert exc.code() not in (
            grpc.StatusCode.UNAUTHENTICATED,
            grpc.StatusCode.PERMISSION_DENIED,
        ), f"{rpc.label} with the right role: {exc.code()} {exc.details()}"


def test_through_the_gateway_401_names_the_scheme_and_403_the_role(stack: Stack):
    queue = f"{stack.gateway_url}/v1/kitchen/orders"
    missing = httpx.get(queue)
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["code"] == 16
    expired = httpx.get(queue, headers={"Authorization": f"Bearer {token(['kitchen'], exp=-60)}"})
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    manager = httpx.get(queue, headers={"Authorization": f"Bearer {token(['manager'])}"})
    assert manager.status_code == 403, manager.text
    assert manager.json()["code"] == 7 and "kitchen" in manager.json()["message"]
    kitchen = httpx.get(queue, headers={"Authorization": f"Bearer {token(['kitchen'])}"})
    assert kitchen.status_code == 200, kitchen.text


# -- who did it ------------------------------------------------------------------------------


def as_(name: str, role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token([role], sub=name)}"),)


def test_every_staff_action_records_who_did_it(stack: Stack):
    ana, bia = as_("ana", "kitchen"), as_("bia", "manager")
    product = new_product(stack)
    cooked, cancelled, refunded = (checkout(stack, product) for _ in range(3))
    for order in (cooked, cancelled, refunded):
        pay(stack, order.id)
        wait_order(stack, order.id, RECEIVED, P_APPROVED)

    stack.kitchen.UpdateOrderStatus(
        orders_pb2.UpdateOrderStatusRequest(
            order_id=cooked.id, status=orders_pb2.ORDER_STATUS_IN_PREPARATION
        ),
        metadata=ana,
    )
    step = get_order(stack, cooked.id).history[-1]
    assert (step.status, step.actor, step.actor_subject) == (
        orders_pb2.ORDER_STATUS_IN_PREPARATION,
        orders_pb2.ACTOR_KITCHEN,
        "ana",
    )
    emitted = [e for e in timeline(stack, cooked.id) if e.direction == orders_pb2.DIRECTION_EMITTED]
    assert [e.actor_subject for e in emitted if e.event_type.endswith("OrderStatusChanged")][
        -1
    ] == "ana", "the timeline names who caused the event"
    assert all(e.actor_subject == "" for e in emitted if e.event_type.endswith("OrderCreated"))

    stack.order_service.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=cancelled.id, reason="wrong order"), metadata=bia
    )
    final = wait_order(stack, cancelled.id, CANCELLED, P_REFUNDED)
    staff_cancel = next(h for h in final.history if h.status == CANCELLED)
    assert (staff_cancel.actor, staff_cancel.actor_subject) == (orders_pb2.ACTOR_STAFF, "bia")

    payment = wait_payment(stack, refunded.id, P_APPROVED)
    stack.payments.RefundPayment(
        payment_pb2.RefundPaymentRequest(payment_id=payment.id, reason="cold burger"), metadata=bia
    )
    back = wait_payment(stack, refunded.id, P_REFUNDED)
    assert back.history[-1].actor_subject == "bia"
    assert all(h.actor_subject == "" for h in back.history[:-1]), "the saga's steps name nobody"

    def access_lines(proc, rpc: str) -> list[dict]:
        lines = [json.loads(line) for line in proc.log().splitlines() if line.startswith("{")]
        return [e for e in lines if e.get("logger") == "comanda.access" and e["rpc"] == rpc]

    def logged(proc, rpc: str, actor: str, code: str = "OK") -> bool:
        return any((e.get("actor"), e["code"]) == (actor, code) for e in access_lines(proc, rpc))

    wait_for(lambda: logged(stack.orders[0], "UpdateOrderStatus", "ana"), 5, "ana's step logged")
    wait_for(lambda: logged(stack.payment[0], "RefundPayment", "bia"), 5, "bia's refund logged")
    assert all("actor" not in e for e in access_lines(stack.orders[0], "GetOrder")), (
        "anonymous calls name nobody"
    )
    with pytest.raises(grpc.RpcError):
        stack.order_service.ListOrders(orders_pb2.ListOrdersRequest(), metadata=ana)
    wait_for(
        lambda: logged(stack.orders[0], "ListOrders", "ana", "PERMISSION_DENIED"),
        5,
        "a refused attempt to name who tried",
    )

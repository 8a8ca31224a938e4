"""The production path, attacked: what a deployment without the development conveniences
refuses, over direct gRPC and through the gateway."""

from __future__ import annotations

import grpc
import httpx
import pytest

from comanda.payment.v1 import payment_pb2
from tests.support.saga import checkout, new_product, wait_payment
from tests.support.stack import Stack


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

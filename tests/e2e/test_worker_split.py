"""The API and the saga's work run in separate processes: a server serves RPCs only (its
commits nudge the workers' relays), a worker runs the relay, the consumer and the sweepers and
serves only gRPC health."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from comanda.orders.v1 import orders_pb2, orders_pb2_grpc
from tests.support.saga import P_PENDING, checkout, new_product, timeline, wait_payment
from tests.support.stack import Stack
from tests.support.waiting import wait_for


@pytest.mark.parametrize("own_stack", [{"gateway": False}], indirect=True)
def test_checkout_is_served_without_workers_and_the_saga_goes_on_when_one_starts(
    own_stack: Stack,
) -> None:
    product = new_product(own_stack)
    worker = own_stack.orders_workers[0]
    worker.stop()
    order = checkout(own_stack, product)  # the server alone accepts it
    assert order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT
    created = [e for e in timeline(own_stack, order.id) if e.event_type.endswith("OrderCreated")]
    assert [e.outcome for e in created] == ["pending"], "stored, not published: no relay runs"
    worker.start()
    wait_payment(own_stack, order.id, P_PENDING, timeout=20)


@pytest.mark.parametrize("own_stack", [{"gateway": False}], indirect=True)
def test_a_worker_serves_health_but_not_the_api(own_stack: Stack) -> None:
    worker = own_stack.orders_workers[0]
    with grpc.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as error:
            orders_pb2_grpc.OrderServiceStub(channel).GetOrder(
                orders_pb2.GetOrderRequest(order_id="00000000-0000-4000-8000-000000000000")
            )
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    wait_for(lambda: "orders worker listening" in worker.log(), 5, "the worker's start line")

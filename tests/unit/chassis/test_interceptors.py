"""The interceptors' pure parts: the logging context's aggregate (the staff token checks are
chassis.access's, tested in test_access.py)."""

from chassis import logs
from chassis.interceptors import RequestContext
from comanda.orders.v1 import orders_pb2
from comanda.payment.v1 import payment_pb2


def test_the_aggregate_id_is_taken_from_its_field_or_the_message_that_names_it_otherwise():
    context = RequestContext("order_id", {orders_pb2.Order.DESCRIPTOR.full_name: "id"})
    logs.aggregate_id_var.set("")
    context.on_response(orders_pb2.GetOrderRequest(order_id="o-1"))
    assert logs.aggregate_id_var.get() == "o-1"
    context.on_response(orders_pb2.Order(id="o-2"))
    assert logs.aggregate_id_var.get() == "o-2"
    context.on_response(payment_pb2.Payment(id="p-1", order_id="o-3"))
    assert logs.aggregate_id_var.get() == "o-3", "a payment names its order in order_id"
    context.on_response(payment_pb2.GetPaymentRequest(payment_id="p-1"))
    assert logs.aggregate_id_var.get() == "o-3", "a message without one leaves it"

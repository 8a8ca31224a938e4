"""Domain objects to protobuf messages of comanda.payment.v1."""

from __future__ import annotations

from chassis.protomap import enum_to_proto, timestamp
from comanda.payment.v1 import payment_pb2
from payment.domain.model import Payment


def payment(p: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        id=p.id,
        order_id=p.order_id,
        amount_centavos=p.amount_centavos,
        status=enum_to_proto(payment_pb2.PaymentStatus, p.status),
        provider=p.provider,
        provider_reference=p.provider_reference,
        qr_code=p.qr_code,
        expire_time=timestamp(p.expires_at),
        history=[
            payment_pb2.PaymentStatusChange(
                status=enum_to_proto(payment_pb2.PaymentStatus, h.status),
                reason=h.reason,
                actor_subject=h.actor_subject,
                time=timestamp(h.time),
            )
            for h in p.history
        ],
        create_time=timestamp(p.created_at),
        update_time=timestamp(p.updated_at),
    )

"""Payment listings page through every payment once, newest first (keyset pagination)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chassis import pagination
from chassis.errors import InvalidArgument
from comanda.events.v1 import events_pb2
from payment.adapters.provider import FakePixProvider
from payment.domain.model import PaymentStatus
from payment.service_layer import handlers, payments
from payment.service_layer.unit_of_work import PaymentUnitOfWork


def test_pages_hold_every_payment_once_newest_first(payment_engine):
    provider = FakePixProvider("secret", "pix@comanda.example", "Comanda", "Sao Paulo")

    def uow() -> PaymentUnitOfWork:
        return PaymentUnitOfWork(payment_engine)

    for _ in range(5):
        with uow() as u:
            created = events_pb2.OrderCreated(
                event_id=str(uuid.uuid4()), order_id=str(uuid.uuid4()), total_centavos=990
            )
            handlers.order_created([created], u, provider=provider, expiry=timedelta(minutes=5))
            u.commit()
    seen, token, pages = [], "", 0
    while True:
        page, token = payments.list_payments(uow, PaymentStatus.PENDING, 2, token)
        seen.extend(page)
        pages += 1
        if not token:
            break
    assert pages == 3 and len(seen) == 5
    assert len({p.id for p in seen}) == 5, "each payment once"
    keys = [(p.created_at, p.id) for p in seen]
    assert keys == sorted(keys, reverse=True), "newest first"
    assert payments.list_payments(uow, PaymentStatus.APPROVED, 2, "") == ([], "")
    with pytest.raises(InvalidArgument) as err:
        payments.list_payments(uow, None, 2, pagination.encode(["yesterday", "not-an-id"]))
    assert err.value.field == "page_token"

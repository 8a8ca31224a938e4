from datetime import timedelta

import pytest

from chassis.errors import FailedPrecondition
from payment.domain import events
from payment.domain.model import Charge, Payment, PaymentStatus

CHARGE = Charge("fake", "ref", "qr")


def published(payment: Payment) -> list[type]:
    return [type(e) for e in payment.events if not isinstance(e, events.PaymentChanged)]


def entered(payment: Payment) -> list[PaymentStatus]:
    """The status each recorded PaymentChanged (the hook of every change) says was entered."""
    return [e.status for e in payment.events if isinstance(e, events.PaymentChanged)]


def payment_in(status: PaymentStatus) -> Payment:
    payment = Payment.open("order-1", 2590, CHARGE, timedelta(minutes=10), "cause")
    payment.status = status
    payment.events.clear()
    return payment


def test_opening_records_payment_created_with_expiry():
    payment = Payment.open("order-1", 2590, CHARGE, timedelta(minutes=10), "cause")
    assert payment.status is PaymentStatus.PENDING
    event, changed = payment.events
    assert isinstance(event, events.PaymentCreated)
    assert isinstance(changed, events.PaymentChanged)
    assert (changed.status, changed.provider_reference) == (PaymentStatus.PENDING, "ref")
    assert (event.order_id, event.amount_centavos, event.causation_id) == ("order-1", 2590, "cause")
    assert event.expire_time == payment.expires_at


@pytest.mark.parametrize(
    ("start", "end", "event"),
    [
        (PaymentStatus.PENDING, PaymentStatus.APPROVED, events.PaymentApproved),
        (PaymentStatus.CANCELLED, PaymentStatus.REFUNDED, events.PaymentRefunded),  # step 9
        (PaymentStatus.EXPIRED, PaymentStatus.REFUNDED, events.PaymentRefunded),  # step 9
        (PaymentStatus.DECLINED, PaymentStatus.REFUNDED, events.PaymentRefunded),
        (PaymentStatus.APPROVED, PaymentStatus.APPROVED, None),  # duplicate approval
        (PaymentStatus.REFUNDED, PaymentStatus.REFUNDED, None),
    ],
)
def test_approval(start, end, event):
    payment = payment_in(start)
    payment.approve()
    assert payment.status is end
    assert published(payment) == ([event] if event else [])
    assert entered(payment) == ([end] if event else [])


@pytest.mark.parametrize("start", list(PaymentStatus))
def test_decline_only_from_pending(start):
    payment = payment_in(start)
    payment.decline("insufficient funds")
    expected = PaymentStatus.DECLINED if start is PaymentStatus.PENDING else start
    assert payment.status is expected


@pytest.mark.parametrize("start", list(PaymentStatus))
def test_expiry_only_from_pending(start):
    payment = payment_in(start)
    assert payment.expire().applied is (start is PaymentStatus.PENDING)
    if start is PaymentStatus.PENDING:
        assert payment.status is PaymentStatus.EXPIRED
        assert published(payment) == [events.PaymentExpired]
        assert entered(payment) == [PaymentStatus.EXPIRED]
    else:
        assert payment.events == []


@pytest.mark.parametrize(
    ("start", "end", "event"),
    [
        (PaymentStatus.PENDING, PaymentStatus.CANCELLED, events.PaymentCancelled),
        (PaymentStatus.APPROVED, PaymentStatus.REFUNDED, events.PaymentRefunded),  # compensation
        (PaymentStatus.DECLINED, PaymentStatus.DECLINED, None),
        (PaymentStatus.EXPIRED, PaymentStatus.EXPIRED, None),
        (PaymentStatus.CANCELLED, PaymentStatus.CANCELLED, None),
        (PaymentStatus.REFUNDED, PaymentStatus.REFUNDED, None),
    ],
)
def test_order_cancelled(start, end, event):
    payment = payment_in(start)
    payment.order_cancelled("cause")
    assert payment.status is end
    assert published(payment) == ([event] if event else [])
    assert entered(payment) == ([end] if event else [])


@pytest.mark.parametrize("start", [s for s in PaymentStatus if s is not PaymentStatus.APPROVED])
def test_staff_refund_needs_an_approved_payment(start):
    with pytest.raises(FailedPrecondition) as err:
        payment_in(start).refund("goodwill")
    assert start.value in str(err.value)


def test_cancelled_before_created_is_a_closed_record():
    payment = Payment.cancelled_before_created("order-9", "cause")
    assert payment.status is PaymentStatus.CANCELLED
    assert isinstance(payment.events[0], events.PaymentCancelled)

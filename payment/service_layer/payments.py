"""Use cases of payments: read, list, refund, the provider webhook, the fake checkout,
expiry and the fake provider's auto-approval."""

from __future__ import annotations

import logging
from datetime import timedelta

from chassis import pagination
from chassis.errors import InvalidArgument, NotFound
from chassis.outcomes import Outcome
from chassis.validation import validate_text, validate_uuid
from payment.adapters import qrcode
from payment.adapters.provider import FakePixProvider, Notification, PaymentProvider
from payment.domain.model import Payment, PaymentStatus
from payment.service_layer.unit_of_work import PaymentUnitOfWork, UowFactory

log = logging.getLogger(__name__)

PAYMENT_KEY = pagination.Keyset(pagination.timestamp, pagination.uuid_text)  # newest first


def get(uow_factory: UowFactory, payment_id: str) -> Payment:
    payment_id = validate_uuid(payment_id, "payment_id")
    with uow_factory().reading() as uow:
        payment = uow.payments.get(payment_id)
    if payment is None:
        raise NotFound("payment", payment_id)
    return payment


def for_order(uow_factory: UowFactory, order_id: str) -> Payment:
    order_id = validate_uuid(order_id, "order_id")
    with uow_factory().reading() as uow:
        payment = uow.payments.for_order(order_id)
    if payment is None:
        raise NotFound("payment of order", order_id)
    return payment


MAX_QR_SCALE = 40


def qr_code(
    uow_factory: UowFactory, payment_id: str, image_format: qrcode.ImageFormat | None, scale: int
) -> tuple[bytes, str]:
    """The QR code of a PENDING charge as an image: (bytes, content type)."""
    if not 0 <= scale <= MAX_QR_SCALE:
        raise InvalidArgument("scale", f"must be 0..{MAX_QR_SCALE} ({scale} given)")
    payment = get(uow_factory, payment_id)
    payment.check_payable("show its QR code")
    return qrcode.render(payment.qr_code, image_format or qrcode.ImageFormat.SVG, scale or 8)


def list_payments(
    uow_factory: UowFactory, status: PaymentStatus | None, page_size: int, page_token: str
) -> tuple[list[Payment], str]:
    size = pagination.page_size(page_size)
    after = PAYMENT_KEY.after(page_token)
    with uow_factory().reading() as uow:
        found = uow.payments.search(status, after, size + 1)
    return PAYMENT_KEY.page(found, size, lambda p: [p.created_at.isoformat(), p.id])


def refund(
    uow_factory: UowFactory, payment_id: str, reason: str, actor_subject: str = ""
) -> Payment:
    """A staff refund of an APPROVED payment, recorded as done by `actor_subject`."""
    payment_id = validate_uuid(payment_id, "payment_id")
    reason = validate_text(reason, "reason", 200, required=False)
    with uow_factory() as uow:
        payment = uow.payments.get(payment_id, for_update=True)
        if payment is None:
            raise NotFound("payment", payment_id)
        payment.refund(reason, actor_subject)
        uow.payments.save(payment)
        uow.commit()
    return payment


def receive_notification(
    uow_factory: UowFactory,
    provider: PaymentProvider,
    provider_name: str,
    body: bytes,
    signature: str,
) -> tuple[bool, Payment]:
    """The webhook: verify, then apply once. Returns (was a replay, the payment)."""
    if provider_name != provider.name:
        raise NotFound("payment provider", provider_name)
    note = provider.parse_notification(body, signature)
    with uow_factory() as uow:
        payment = uow.payments.by_reference(provider.name, note.reference, for_update=True)
        if payment is None:
            raise NotFound("payment with provider reference", note.reference)
        (outcome,) = _apply(uow, provider.name, [(note, payment)])
        if outcome is None:
            uow.rollback()
            return True, get(uow_factory, payment.id)
        uow.commit()
    log.info("provider notification %s: %s", note.id, outcome)
    return False, payment


def _apply(
    uow: PaymentUnitOfWork, provider: str, notes: list[tuple[Notification, Payment]]
) -> list[Outcome | None]:
    """Verified notifications' effects on their (locked) payments, their records written in
    one statement; None for one received before (a replay), in which case the caller must
    roll back (its payment was changed in memory, not saved)."""
    outcomes = [
        payment.approve() if note.status == "approved" else payment.decline(note.detail)
        for note, payment in notes
    ]
    recorded = uow.payments.record_notifications(
        provider,
        [
            (note.id, payment.id, note.status, str(outcome))
            for (note, payment), outcome in zip(notes, outcomes, strict=True)
        ],
    )
    answers: list[Outcome | None] = []
    for (note, payment), outcome in zip(notes, outcomes, strict=True):
        if note.id in recorded:
            uow.payments.save(payment)
            answers.append(outcome)
        else:
            answers.append(None)
    return answers


def fake_checkout(
    uow_factory: UowFactory,
    provider: FakePixProvider,
    payment_id: str,
    approve: bool,
    reason: str = "",
) -> Payment:
    """The customer's banking app: pay or decline a PENDING charge, through the webhook."""
    payment = get(uow_factory, payment_id)
    payment.check_payable()
    reason = validate_text(reason, "reason", 200, required=False)
    body, signature = provider.notification(
        payment.provider_reference,
        "approved" if approve else "rejected",
        "" if approve else reason or "declined by the bank",
    )
    return receive_notification(uow_factory, provider, provider.name, body, signature)[1]


def expire_overdue(uow_factory: UowFactory, batch: int = 100) -> int:
    """Step 4 for every overdue PENDING payment (any replica may run it; rows are skip-locked)."""
    with uow_factory() as uow:
        count = 0
        for payment in uow.payments.overdue(batch):
            if payment.expire().applied:
                uow.payments.save(payment)
                count += 1
        uow.commit()
    return count


AUTO_APPROVAL_BATCH = 200  # charges approved in one transaction at most


def auto_approve(
    uow_factory: UowFactory,
    provider: FakePixProvider,
    after: timedelta,
    batch: int = AUTO_APPROVAL_BATCH,
) -> int:
    """The fake provider's demo mode: approve the PENDING charges older than `after`, each
    through a signed notification checked and applied as the webhook does, in one
    transaction (the charges are locked, skipping any another replica holds)."""
    with uow_factory() as uow:
        due = uow.payments.pending_older_than(after, batch)
        notes = [
            provider.parse_notification(
                *provider.notification(payment.provider_reference, "approved")
            )
            for payment in due
        ]
        outcomes = _apply(uow, provider.name, list(zip(notes, due, strict=True)))
        if None in outcomes:  # cannot happen (fresh notification ids): write nothing
            raise AssertionError("auto-approval: a fresh notification was recorded before")
        uow.commit()
    return len(due)

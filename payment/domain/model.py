"""The payment domain: a Pix payment and its state machine.

    PENDING -> APPROVED -> REFUNDED
    PENDING -> DECLINED | EXPIRED | CANCELLED
    CANCELLED | EXPIRED | DECLINED --approval arrives late--> REFUNDED (the money goes back)

Pure Python: no gRPC, SQL or NATS.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from chassis.errors import FailedPrecondition
from chassis.events import Aggregate, utcnow
from chassis.outcomes import Outcome
from payment.domain import events
from payment.domain.values import PaymentStatus as PaymentStatus  # re-exported

CLOSED_UNPAID = (PaymentStatus.DECLINED, PaymentStatus.EXPIRED, PaymentStatus.CANCELLED)


@dataclass
class StatusChange:
    status: PaymentStatus
    reason: str
    time: datetime
    actor_subject: str = ""  # the staff member (their token's `sub`), for a staff refund


@dataclass(frozen=True)
class Charge:
    """What the provider issued for a payment."""

    provider: str
    reference: str
    qr_code: str


@dataclass(eq=False)
class Payment(Aggregate):
    id: str
    order_id: str
    amount_centavos: int
    status: PaymentStatus
    provider: str
    provider_reference: str
    qr_code: str
    expires_at: datetime | None
    history: list[StatusChange]
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        Aggregate.__init__(self)

    @classmethod
    def open(
        cls,
        order_id: str,
        amount_centavos: int,
        charge: Charge,
        expiry: timedelta,
        causation_id: str,
        payment_id: str | None = None,
    ) -> Payment:
        """Step 2: a PENDING payment for an order."""
        now = utcnow()
        payment = cls(
            payment_id or str(uuid.uuid4()),
            order_id,
            amount_centavos,
            PaymentStatus.PENDING,
            charge.provider,
            charge.reference,
            charge.qr_code,
            now + expiry,
            [StatusChange(PaymentStatus.PENDING, "Pix charge issued", now)],
            now,
            now,
        )
        payment.record(
            events.PaymentCreated(
                order_id=order_id,
                causation_id=causation_id,
                payment_id=payment.id,
                amount_centavos=amount_centavos,
                expire_time=payment.expires_at,
            )
        )
        payment._changed()
        return payment

    @classmethod
    def cancelled_before_created(cls, order_id: str, causation_id: str) -> Payment:
        """The order's cancellation arrived before its creation: a closed record, so that a
        late OrderCreated finds it and opens no charge."""
        now = utcnow()
        payment = cls(
            str(uuid.uuid4()),
            order_id,
            0,
            PaymentStatus.CANCELLED,
            "",
            "",
            "",
            None,
            [StatusChange(PaymentStatus.CANCELLED, "order cancelled before any charge", now)],
            now,
            now,
        )
        payment.record(
            events.PaymentCancelled(
                order_id=order_id, causation_id=causation_id, payment_id=payment.id
            )
        )
        payment._changed()
        return payment

    def _move(self, to: PaymentStatus, reason: str, actor_subject: str = "") -> None:
        self.status = to
        self.updated_at = utcnow()
        self.history.append(StatusChange(to, reason, self.updated_at, actor_subject))
        if to is not PaymentStatus.PENDING:
            self.expires_at = None
        self._changed()

    def _changed(self) -> None:
        self.record(
            events.PaymentChanged(
                payment_id=self.id,
                order_id=self.order_id,
                status=self.status,
                provider_reference=self.provider_reference,
                amount_centavos=self.amount_centavos,
            )
        )

    def approve(self, causation_id: str = "") -> Outcome:
        """Step 3 (approved), or step 9 when the payment was already closed unpaid."""
        before = self.status
        if before is PaymentStatus.PENDING:
            self._move(PaymentStatus.APPROVED, "approved by the provider")
            self.record(
                events.PaymentApproved(
                    order_id=self.order_id,
                    causation_id=causation_id,
                    payment_id=self.id,
                    amount_centavos=self.amount_centavos,
                )
            )
            return Outcome.moved(before, PaymentStatus.APPROVED)
        if before in CLOSED_UNPAID:
            self._refund(f"approval arrived after the payment was {before.value}", causation_id)
            return Outcome.moved(before, PaymentStatus.REFUNDED, "late approval")
        return self._already()

    def decline(self, reason: str, causation_id: str = "") -> Outcome:
        if self.status is not PaymentStatus.PENDING:
            return self._already()
        self._move(PaymentStatus.DECLINED, reason or "declined by the provider")
        self.record(
            events.PaymentDeclined(
                order_id=self.order_id, causation_id=causation_id, payment_id=self.id, reason=reason
            )
        )
        return Outcome.moved(PaymentStatus.PENDING, PaymentStatus.DECLINED)

    def expire(self) -> Outcome:
        """Step 4: the expiry passed while PENDING."""
        if self.status is not PaymentStatus.PENDING:
            return self._already()
        self._move(PaymentStatus.EXPIRED, "not paid before the expiry")
        self.record(events.PaymentExpired(order_id=self.order_id, payment_id=self.id))
        return Outcome.moved(PaymentStatus.PENDING, PaymentStatus.EXPIRED)

    def order_cancelled(self, causation_id: str) -> Outcome:
        """Step 8: cancel a pending charge, refund a paid one (compensation)."""
        before = self.status
        if before is PaymentStatus.PENDING:
            self._move(PaymentStatus.CANCELLED, "order cancelled")
            self.record(
                events.PaymentCancelled(
                    order_id=self.order_id, causation_id=causation_id, payment_id=self.id
                )
            )
            return Outcome.moved(before, PaymentStatus.CANCELLED)
        if before is PaymentStatus.APPROVED:
            self._refund("order cancelled after payment", causation_id)
            return Outcome.moved(before, PaymentStatus.REFUNDED)
        return self._already()

    def _already(self) -> Outcome:
        return Outcome.ignored(f"payment already {self.status.value}")

    def refund(self, reason: str, actor_subject: str = "") -> None:
        """A staff refund, by `actor_subject`: only an APPROVED payment."""
        if self.status is not PaymentStatus.APPROVED:
            raise FailedPrecondition(
                f"payment {self.id}",
                self.status.value,
                "refund",
                "only APPROVED payments can be refunded",
            )
        self._refund(reason or "refunded by staff", "", actor_subject)

    def _refund(self, reason: str, causation_id: str, actor_subject: str = "") -> None:
        self._move(PaymentStatus.REFUNDED, reason, actor_subject)
        self.record(
            events.PaymentRefunded(
                order_id=self.order_id,
                causation_id=causation_id,
                payment_id=self.id,
                amount_centavos=self.amount_centavos,
                reason=reason,
            )
        )

    def check_payable(self, wanted: str = "pay or decline") -> None:
        if self.status is not PaymentStatus.PENDING:
            raise FailedPrecondition(
                f"payment {self.id}",
                self.status.value,
                wanted,
                "only a PENDING charge can be paid",
            )

"""The payment provider port, and the fake Pix provider that implements it.

A real Mercado Pago adapter would implement the same port: issue a charge (QR code), refund,
and turn a signed webhook notification into a `Notification`. The fake issues the Pix payload
locally and, when the fake checkout is paid or declined, signs a notification exactly as the
webhook expects it and hands it to the same webhook handler.

Signature (in the spirit of Mercado Pago's `x-signature`): header
`x-signature: ts=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<ts>." + body)>`. A signature
older or newer than `tolerance` seconds is stale.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chassis.errors import InvalidArgument, Unauthenticated
from payment.domain import pix
from payment.domain.model import Charge


@dataclass(frozen=True)
class Notification:
    id: str  # the provider's id of this notification: a replay carries the same id
    reference: str  # the provider's id of the charge
    status: str  # "approved" or "rejected"
    detail: str


class PaymentProvider(Protocol):
    name: str

    def issue_charge(
        self, payment_id: str, amount_centavos: int, expires_at: datetime
    ) -> Charge: ...

    def refund(self, reference: str, amount_centavos: int) -> None: ...

    def parse_notification(self, body: bytes, signature: str) -> Notification: ...


def sign(secret: str, body: bytes, ts: int) -> str:
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


def verify(
    secret: str, body: bytes, header: str, tolerance: float, now: float | None = None
) -> None:
    """Raise Unauthenticated unless `header` signs `body` with `secret`, recently."""
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    ts, given = parts.get("ts", ""), parts.get("v1", "")
    if not ts.isdigit() or not given:
        raise Unauthenticated(
            "x-signature: missing or malformed (expected ts=<unix seconds>,v1=<hex>)"
        )
    if abs((now if now is not None else time.time()) - int(ts)) > tolerance:
        raise Unauthenticated(f"x-signature: stale timestamp (more than {tolerance:.0f}s away)")
    expected = sign(secret, body, int(ts)).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given.lower()):
        raise Unauthenticated("x-signature: does not match the body")


class FakePixProvider:
    """A simulated Pix provider: no network, same contract as a real one."""

    name = "fake"

    def __init__(
        self,
        secret: str,
        pix_key: str,
        merchant_name: str,
        merchant_city: str,
        tolerance: float = 300,
    ) -> None:
        self.secret = secret
        self.pix_key = pix_key
        self.merchant_name = merchant_name
        self.merchant_city = merchant_city
        self.tolerance = tolerance
        self.refunds: list[tuple[str, int]] = []

    def issue_charge(self, payment_id: str, amount_centavos: int, expires_at: datetime) -> Charge:
        reference = "fake-" + uuid.uuid5(uuid.NAMESPACE_URL, f"comanda-payment:{payment_id}").hex
        qr = pix.payload(
            self.pix_key, amount_centavos, reference, self.merchant_name, self.merchant_city
        )
        return Charge(self.name, reference, qr)

    def refund(self, reference: str, amount_centavos: int) -> None:
        self.refunds.append((reference, amount_centavos))

    def notification(self, reference: str, status: str, detail: str = "") -> tuple[bytes, str]:
        """What the provider would POST to the webhook: (body, x-signature header)."""
        body = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "type": "payment",
                "action": "payment.updated",
                "date_created": datetime.now().astimezone().isoformat(),
                "data": {"id": reference, "status": status, "status_detail": detail},
            },
            separators=(",", ":"),
        ).encode()
        return body, sign(self.secret, body, int(time.time()))

    def parse_notification(self, body: bytes, signature: str) -> Notification:
        verify(self.secret, body, signature, self.tolerance)
        try:
            doc = json.loads(body)
            data = doc["data"]
            notification = Notification(
                str(doc["id"]),
                str(data["id"]),
                str(data["status"]),
                str(data.get("status_detail", "")),
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(
                "body", "not a payment notification: expected {id, data: {id, status}}"
            ) from None
        if notification.status not in ("approved", "rejected"):
            raise InvalidArgument(
                "body.data.status", f"{notification.status!r} is not approved or rejected"
            )
        return notification

"""Who may call what: the contract's roles and the decision for one call."""

from __future__ import annotations

import time

import jwt
import pytest

from chassis import access, tokens
from chassis.access import Access, authorize
from chassis.errors import PermissionDenied, Unauthenticated
from chassis.tokens import Identity, TokenVerifier

SECRET = "unit-test-secret-0123456789abcdef0123"
VERIFIER = TokenVerifier("iss", "aud", secret=SECRET)
KITCHEN = Access(access.STAFF, ("kitchen",))
PUBLIC = Access(access.PUBLIC, ())


def bearer(roles=("kitchen",), sub="ana", secret=SECRET, exp=300) -> str:
    now = int(time.time())
    claims = {"sub": sub, "roles": list(roles), "iss": "iss", "aud": "aud", "exp": now + exp}
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


def test_the_contract_says_who_may_call_each_method():
    advance = access.of_path("/comanda.orders.v1.KitchenService/UpdateOrderStatus")
    assert advance == Access(access.STAFF, ("kitchen",))
    refund = access.of_path("/comanda.payment.v1.PaymentService/RefundPayment")
    assert refund == Access(access.STAFF, ("manager",))
    assert access.of_path("/comanda.orders.v1.OrderService/CreateOrder") == PUBLIC
    webhook = access.of_path("/comanda.payment.v1.PaymentService/ReceiveProviderNotification")
    assert webhook.audience == access.PROVIDER
    assert access.of_path("/nope.Service/Method") == PUBLIC
    assert access.of_path("garbage") == PUBLIC


def test_a_staff_token_with_the_role_passes():
    assert authorize("Advance", KITCHEN, bearer(), VERIFIER) == Identity(
        "ana", frozenset({"kitchen"})
    )


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("", "is for staff with role kitchen"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
        ("Bearer", "must be 'Bearer <token>'"),
        ("Bearer not-a-jwt", "not a well-formed JWT"),
        (bearer(secret="forged-secret-0123456789abcdef0123456"), "signature"),
        (bearer(exp=-3600), "expired"),
    ],
)
def test_no_bad_or_expired_token_is_unauthenticated(header, says):
    with pytest.raises(Unauthenticated) as caught:
        authorize("Advance", KITCHEN, header, VERIFIER)
    assert says in caught.value.message and caught.value.message.startswith("Advance")
    token = header.partition(" ")[2]
    assert not token or token not in caught.value.message


def test_a_valid_token_without_the_role_is_permission_denied():
    with pytest.raises(PermissionDenied) as caught:
        authorize("Advance", KITCHEN, bearer(roles=["manager"]), VERIFIER)
    assert "needs role kitchen" in caught.value.message and "'ana'" in caught.value.message


def test_public_methods_take_an_optional_token_that_must_be_valid():
    assert authorize("Cancel", PUBLIC, "", VERIFIER) is None
    assert authorize("Cancel", PUBLIC, bearer(roles=["manager"]), VERIFIER) == Identity(
        "ana", frozenset({"manager"})
    )
    with pytest.raises(Unauthenticated):
        authorize("Cancel", PUBLIC, bearer(exp=-3600), VERIFIER)


def test_development_tokens_pass_the_development_verifier():
    verifier = TokenVerifier(tokens.DEV_ISSUER, tokens.AUDIENCE, secret=tokens.DEV_SECRET)
    header = "Bearer " + tokens.sign("bia", ["kitchen", "manager"])
    identity = authorize("Advance", KITCHEN, header, verifier)
    assert identity is not None and identity.subject == "bia"

import time

import pytest

from chassis.errors import InvalidArgument, Unauthenticated
from payment.adapters.provider import FakePixProvider, sign, verify

SECRET = "s3cret"


def test_a_signed_body_verifies():
    body = b'{"id":"n1"}'
    now = int(time.time())
    verify(SECRET, body, sign(SECRET, body, now), tolerance=300, now=now)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "missing or malformed"),
        ("v1=abc", "missing or malformed"),
        ("ts=abc,v1=00", "missing or malformed"),
        ("ts=1000,v1=00", "stale"),
    ],
)
def test_bad_headers_are_unauthenticated(header, reason):
    with pytest.raises(Unauthenticated, match=reason):
        verify(SECRET, b"{}", header, tolerance=300, now=2000)


def test_a_tampered_body_or_wrong_secret_is_rejected():
    now = int(time.time())
    header = sign(SECRET, b'{"a":1}', now)
    with pytest.raises(Unauthenticated, match="does not match"):
        verify(SECRET, b'{"a":2}', header, tolerance=300, now=now)
    with pytest.raises(Unauthenticated, match="does not match"):
        verify("other", b'{"a":1}', header, tolerance=300, now=now)


def test_fake_provider_notifications_round_trip():
    provider = FakePixProvider(SECRET, "k", "n", "c")
    body, header = provider.notification("fake-1", "approved")
    note = provider.parse_notification(body, header)
    assert (note.reference, note.status) == ("fake-1", "approved")
    again = provider.parse_notification(body, header)
    assert again.id == note.id  # a replay carries the same notification id


@pytest.mark.parametrize(
    "body", [b"not json", b'{"id": "x"}', b'{"id":"x","data":{"id":"r","status":"weird"}}']
)
def test_signed_but_malformed_notifications_are_invalid(body):
    provider = FakePixProvider(SECRET, "k", "n", "c")
    with pytest.raises(InvalidArgument):
        provider.parse_notification(body, sign(SECRET, body, int(time.time())))

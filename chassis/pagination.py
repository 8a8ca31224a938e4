"""Opaque page tokens for keyset pagination: the sort key of the last row of a page."""

from __future__ import annotations

import base64
import json
from typing import Any

from chassis.errors import InvalidArgument


def encode(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, default=str).encode()).decode().rstrip("=")


def decode(token: str, size: int, field: str = "page_token") -> list[Any] | None:
    """The key in `token` (None for the first page); INVALID_ARGUMENT when tampered with."""
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        key = None
    if not isinstance(key, list) or len(key) != size:
        raise InvalidArgument(field, "is not a token returned by a previous page")
    return key


def page_size(value: int, default: int = 50, maximum: int = 100, field: str = "page_size") -> int:
    if value == 0:
        return default
    if not 1 <= value <= maximum:
        raise InvalidArgument(field, f"must be 1..{maximum} ({value} given)")
    return value

"""Keyset pagination: a page token is the opaque sort key of the last row of a page.

A listing declares its sort key once (`Keyset`: how to read each part of a token back), the
service layer cuts pages with it, and the repository continues after the key
(`chassis.repository.page_after`).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from chassis.errors import InvalidArgument

T = TypeVar("T")


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


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def uuid_text(value: Any) -> str:
    return str(uuid.UUID(text(value)))


def timestamp(value: Any) -> str:
    """An ISO 8601 time, kept as text (the database casts it)."""
    return datetime.fromisoformat(text(value)).isoformat()


class Keyset:
    """The sort key of a listing: one reader per part, turning a token's JSON value back into
    the key's value (raising ValueError or TypeError for a value no page could have made)."""

    def __init__(self, *parts: Callable[[Any], Any]) -> None:
        self.parts = parts

    def after(self, page_token: str, field: str = "page_token") -> list[Any] | None:
        """The key a page token continues after; None for the first page."""
        key = decode(page_token, len(self.parts), field)
        if key is None:
            return None
        try:
            return [read(value) for read, value in zip(self.parts, key, strict=True)]
        except (TypeError, ValueError, AttributeError):
            raise InvalidArgument(field, "is not a token returned by a previous page") from None

    @staticmethod
    def page(found: list[T], size: int, key: Callable[[T], list[Any]]) -> tuple[list[T], str]:
        """The page (of `size`, from `size + 1` rows found) and the token of the next one
        ("" on the last page)."""
        page = found[:size]
        return page, encode(key(page[-1])) if len(found) > size else ""

"""Input checks every service needs; each failure names the field."""

from __future__ import annotations

import uuid

from chassis.errors import InvalidArgument


def validate_uuid(value: str, field: str) -> str:
    """The canonical form of a UUID; INVALID_ARGUMENT naming `field` otherwise."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument(field, f"{value[:80]!r} is not a valid id (UUID)") from None


def validate_text(value: str, field: str, maximum: int, required: bool = True) -> str:
    """Trimmed text of at most `maximum` characters, without control characters."""
    value = value.strip()
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > maximum:
        raise InvalidArgument(field, f"is longer than {maximum} characters ({len(value)})")
    if any(ord(c) < 32 and c != "\t" for c in value):
        raise InvalidArgument(field, "contains control characters")
    return value

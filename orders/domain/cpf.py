"""CPF (Cadastro de Pessoas Físicas): 11 digits, the last two are check digits."""

from __future__ import annotations

import re

from chassis.errors import InvalidArgument

# ASCII digits only: `\d` also matches other scripts' digits (e.g. full-width ones), which
# int() accepts, so the same CPF could be stored twice in two spellings.
_FORMATTED = re.compile(r"^[0-9]{3}\.[0-9]{3}\.[0-9]{3}-[0-9]{2}$")
_BARE = re.compile(r"^[0-9]{11}$")


def _check_digit(digits: str) -> int:
    weight = len(digits) + 1
    total = sum(int(d) * (weight - i) for i, d in enumerate(digits))
    rest = total % 11
    return 0 if rest < 2 else 11 - rest


def is_valid(digits: str) -> bool:
    if not _BARE.match(digits) or digits == digits[0] * 11:
        return False
    return _check_digit(digits[:9]) == int(digits[9]) and _check_digit(digits[:10]) == int(
        digits[10]
    )


def normalize(value: str, field: str = "cpf") -> str:
    """The CPF's 11 digits; accepts `123.456.789-09` and `12345678909`."""
    value = value.strip()
    if not (_FORMATTED.match(value) or _BARE.match(value)):
        raise InvalidArgument(
            field, "must be 11 digits, bare (12345678909) or formatted (123.456.789-09)"
        )
    digits = re.sub(r"[^0-9]", "", value)
    if not is_valid(digits):
        raise InvalidArgument(field, "is not a valid CPF (check digits do not match)")
    return digits

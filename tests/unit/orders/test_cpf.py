"""The CPF validator: known valid and invalid numbers, formatted and bare, digits stored."""

from __future__ import annotations

import pytest

from chassis.errors import InvalidArgument
from orders.domain import cpf

VALID = [
    ("529.982.247-25", "52998224725"),
    ("52998224725", "52998224725"),
    ("111.444.777-35", "11144477735"),
    ("11144477735", "11144477735"),
    ("123.456.789-09", "12345678909"),
    ("12345678909", "12345678909"),
    ("  529.982.247-25  ", "52998224725"),  # surrounding blanks of a pasted value
    ("935.411.347-80", "93541134780"),  # first check digit 8, second 0 (rest < 2)
]


@pytest.mark.parametrize(("raw", "digits"), VALID)
def test_valid_cpfs_are_accepted_and_stored_as_digits(raw: str, digits: str) -> None:
    got = cpf.normalize(raw)
    assert got == digits, f"normalize({raw!r}): expected {digits!r}, got {got!r}"
    assert cpf.is_valid(digits), f"is_valid({digits!r}) should be True"


WRONG_CHECK_DIGITS = [
    "529.982.247-24",  # second check digit off by one
    "529.982.247-15",  # first check digit off by one
    "52998224726",
    "11144477736",
    "12345678900",
    "12345678919",
]


@pytest.mark.parametrize("raw", WRONG_CHECK_DIGITS)
def test_wrong_check_digits_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        cpf.normalize(raw)
    assert caught.value.field == "cpf", (
        f"expected the error to name 'cpf', got {caught.value.field!r}"
    )
    assert "check digits" in caught.value.description, caught.value.description


@pytest.mark.parametrize("digit", "0123456789")
def test_all_same_digits_are_rejected(digit: str) -> None:
    # 111.111.111-11 etc. pass the check-digit arithmetic but are not real CPFs
    raw = digit * 11
    assert not cpf.is_valid(raw), f"is_valid({raw!r}) should be False"
    with pytest.raises(InvalidArgument) as caught:
        cpf.normalize(raw)
    assert caught.value.field == "cpf"
    formatted = f"{raw[:3]}.{raw[3:6]}.{raw[6:9]}-{raw[9:]}"
    with pytest.raises(InvalidArgument):
        cpf.normalize(formatted)


MALFORMED = [
    "",
    "   ",
    "5299822472",  # 10 digits
    "529982247255",  # 12 digits
    "529.982.247-2",
    "529.982.247-255",
    "52a98224725",  # a letter
    "abc.def.ghi-jk",
    "529-982-247.25",  # separators in the wrong places
    "529.982.24725",  # partly formatted
    "529982247-25",
    "529 982 247 25",
    "+52998224725",
    # other scripts' digits, which `\d` and int() accept: full-width and Arabic-Indic
    "52998224725".translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"}),
    "52998224725".translate({ord(d): ord(d) - ord("0") + 0x0660 for d in "0123456789"}),
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_cpfs_are_rejected_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        cpf.normalize(raw, "customer_cpf")
    assert caught.value.field == "customer_cpf", (
        f"normalize({raw!r}): expected the error to name 'customer_cpf', got {caught.value.field!r}"
    )
    assert "11 digits" in caught.value.description, caught.value.description


@pytest.mark.parametrize("raw", ["52998224725x", "x52998224725", "5299822472", "529.982.247-25"])
def test_is_valid_only_accepts_bare_digits(raw: str) -> None:
    assert not cpf.is_valid(raw), f"is_valid({raw!r}) should only accept 11 bare digits"

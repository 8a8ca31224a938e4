from typing import Any

import pytest

from chassis import pagination
from chassis.errors import InvalidArgument


def test_tokens_round_trip():
    key = ["2026-11-28T12:00:00+00:00", "abc"]
    assert pagination.decode(pagination.encode(key), 2) == key
    assert pagination.decode("", 2) is None


NOT_A_LIST: Any = {}


@pytest.mark.parametrize(
    "token", ["%%%", "bm90IGpzb24", pagination.encode(["only-one"]), pagination.encode(NOT_A_LIST)]
)
def test_tampered_tokens_are_invalid_arguments(token):
    with pytest.raises(InvalidArgument) as err:
        pagination.decode(token, 2)
    assert err.value.field == "page_token"


@pytest.mark.parametrize(("given", "expected"), [(0, 50), (1, 1), (100, 100)])
def test_page_size(given, expected):
    assert pagination.page_size(given) == expected


@pytest.mark.parametrize("given", [-1, 101])
def test_page_size_out_of_range(given):
    with pytest.raises(InvalidArgument, match="page_size"):
        pagination.page_size(given)


KEY = pagination.Keyset(pagination.timestamp, pagination.uuid_text)


def test_a_keyset_cuts_pages_and_reads_its_tokens_back():
    rows = [
        ("2026-11-28T12:00:00+00:00", "6b1d4a10-0000-4000-8000-00000000000" + str(i))
        for i in range(3)
    ]
    page, token = KEY.page(rows, 2, lambda row: list(row))
    assert page == rows[:2]
    assert KEY.after(token) == list(rows[1])
    assert KEY.page(rows, 3, lambda row: list(row)) == (rows, ""), "no token on the last page"
    assert KEY.after("") is None


@pytest.mark.parametrize(
    "key",
    [
        ["yesterday", "6b1d4a10-0000-4000-8000-000000000001"],
        ["2026-11-28", "x"],
        [1, 2],
        [None, None],
    ],
)
def test_a_token_whose_key_no_page_made_is_an_invalid_argument(key):
    with pytest.raises(InvalidArgument) as err:
        KEY.after(pagination.encode(key))
    assert err.value.field == "page_token"

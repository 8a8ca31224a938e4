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

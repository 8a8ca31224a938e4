"""Valid CPFs for tests, each new in this run."""

from __future__ import annotations

import itertools
import time

_serial = itertools.count(int(time.time()) % 100_000_000)


def new_cpf() -> str:
    """A valid CPF (check digits computed here, independently of the service) that nobody
    else in this run has."""
    digits = f"{next(_serial) % 10**9:09d}"
    for _ in range(2):
        weight = len(digits) + 1
        rest = sum(int(d) * (weight - i) for i, d in enumerate(digits)) % 11
        digits += str(0 if rest < 2 else 11 - rest)
    return digits

"""What handling a message did, as a value: applied, ignored (and why), or a duplicate.

Domain methods and handlers return an `Outcome`; code branches on `outcome.applied`, never on
words. The words a timeline or a log shows are written here, once, by `str(outcome)`:

    applied: PENDING -> APPROVED
    applied: PENDING_PAYMENT -> CANCELLED (payment expired)
    ignored: payment already REFUNDED
    duplicate, already applied
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Result(enum.Enum):
    APPLIED = "applied"  # the state changed
    IGNORED = "ignored"  # nothing changed, for the reason given
    DUPLICATE = "duplicate"  # the message was handled before (its inbox row exists)


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    detail: str = ""

    @classmethod
    def done(cls, what: str) -> Outcome:
        """Applied: `what` changed (e.g. "payment 1f… noted (PENDING)")."""
        return cls(Result.APPLIED, what)

    @classmethod
    def moved(cls, before: enum.Enum, after: enum.Enum, note: str = "") -> Outcome:
        """Applied: a status moved from `before` to `after`, with an optional note."""
        move = f"{before.value} -> {after.value}"
        return cls(Result.APPLIED, f"{move} ({note})" if note else move)

    @classmethod
    def ignored(cls, reason: str) -> Outcome:
        """Nothing changed, because `reason`."""
        return cls(Result.IGNORED, reason)

    @property
    def applied(self) -> bool:
        return self.result is Result.APPLIED

    def __str__(self) -> str:
        if self.result is Result.DUPLICATE:
            return "duplicate, already applied"
        return f"{self.result.value}: {self.detail}"


DUPLICATE = Outcome(Result.DUPLICATE)

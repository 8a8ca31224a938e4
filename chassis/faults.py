"""Failpoints: named places where a test can make a real process crash or fail.

Set `COMANDA_FAILPOINTS=<name>[,<name>...]` in a process's environment (tests only; nothing
sets it in production). A crash point ends the process at once with exit code 137, as a
SIGKILL would: no cleanup, no flush, no ack.

- `outbox.after_commit` (crash): right after a transaction that wrote outbox rows committed,
  before the relay could publish them.
- `consumer.after_commit` (crash): right after a consumer committed an event's effect and
  inbox row, before the JetStream ack.
- `consumer.handler` (fail): every event handler raises, as if a dependency were broken.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

_ACTIVE = frozenset(
    p.strip() for p in os.environ.get("COMANDA_FAILPOINTS", "").split(",") if p.strip()
)


class InjectedFailure(RuntimeError):
    pass


def crash(name: str) -> None:
    if name in _ACTIVE:
        log.critical("failpoint %s: crashing now", name)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(137)


def fail(name: str) -> None:
    if name in _ACTIVE:
        raise InjectedFailure(f"failpoint {name}")

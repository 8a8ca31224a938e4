"""A service's message bus: its handlers and its effects after commit, looked up by type.

Each service declares two tables (after cosmicpython's `EVENT_HANDLERS` and eventsourcing's
policy by event type):

- `handlers`: message type -> the function that handles it inside a unit of work,
  `handler(message, uow, **dependencies) -> Outcome`. It must not commit: whoever opened the
  unit of work commits the effect together with whatever else belongs to it (the consumer
  commits it with the event's inbox row, a batch of events in one transaction). The JetStream
  subjects the service's consumer filters on are derived from this table
  (`chassis.messaging.consumer.subscription`), so an event type is subscribed if and only if
  it has a handler.
- `effects`: event type -> the functions to run once a unit of work that recorded such an
  event has committed, `effect(event, **dependencies) -> None`: waking watchers, metrics,
  calls to a provider. They never run for a rolled back transaction; one that fails is logged
  and does not undo the commit.

A handler may take a whole run of messages of its type at once (`@batched`: a list in, their
outcomes in order out), so that one statement writes what many messages cause; `handle_many`
gives it every consecutive message of its type.

A handler or effect names what else it needs as keyword parameters (`provider`, `watchers`);
the bus binds them from its `dependencies` once, when it is made, so a lookup costs one
dictionary access per message.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from chassis.db import UnitOfWork
from chassis.errors import DomainError
from chassis.outcomes import Outcome

log = logging.getLogger(__name__)

U = TypeVar("U", bound=UnitOfWork)
Handlers = Mapping[type[Any], Callable[..., Outcome] | Callable[..., list[Outcome]]]
Effects = Mapping[type[Any], Sequence[Callable[..., None]]]


class UnhandledMessage(DomainError):
    """A message of a type no handler is registered for: no retry can change that."""


F = TypeVar("F", bound=Callable[..., Any])


def batched(handler: F) -> F:
    """Mark a handler that takes a list of messages of its type, and returns their outcomes in
    the same order."""
    handler.batched = True  # type: ignore[attr-defined]
    return handler


class MessageBus(Generic[U]):
    def __init__(
        self, handlers: Handlers, effects: Effects | None = None, **dependencies: Any
    ) -> None:
        self._handlers: dict[type[Any], Callable[[Any, U], Any]] = {
            kind: _bind(handler, 2, dependencies) for kind, handler in handlers.items()
        }
        self._batched = {
            kind for kind, handler in handlers.items() if getattr(handler, "batched", False)
        }
        self._effects: dict[type[Any], tuple[Callable[[Any], None], ...]] = {
            kind: tuple(_bind(effect, 1, dependencies) for effect in chain)
            for kind, chain in (effects or {}).items()
        }

    @property
    def message_types(self) -> list[type[Any]]:
        """The types the bus has a handler for, in the order of the table."""
        return list(self._handlers)

    def handle(self, message: Any, uow: U) -> Outcome:
        """Handle `message` inside `uow` (which the caller commits)."""
        (outcome,) = self.handle_many([message], uow)
        return outcome

    def handle_many(self, messages: Sequence[Any], uow: U) -> list[Outcome]:
        """Handle `messages` in order inside `uow` (which the caller commits); a batched
        handler gets each run of consecutive messages of its type at once."""
        outcomes: list[Outcome] = []
        start = 0
        while start < len(messages):
            kind = type(messages[start])
            handler = self._handlers.get(kind)
            if handler is None:
                raise UnhandledMessage(f"no handler for {kind.__name__}")
            if kind not in self._batched:
                outcomes.append(handler(messages[start], uow))
                start += 1
                continue
            end = start + 1
            while end < len(messages) and type(messages[end]) is kind:
                end += 1
            run = handler(list(messages[start:end]), uow)
            if len(run) != end - start:
                raise AssertionError(f"{_name(handler)}: {len(run)} outcomes for {end - start}")
            outcomes += run
            start = end
        return outcomes

    def after_commit(self, events: Iterable[Any]) -> None:
        """Run the effects of `events`, which a unit of work has just committed."""
        for event in events:
            for effect in self._effects.get(type(event), ()):
                try:
                    effect(event)
                except Exception:
                    log.exception("effect %s of %s failed", _name(effect), type(event).__name__)


def _bind(function: Callable[..., Any], positional: int, dependencies: Mapping[str, Any]) -> Any:
    """`function` with its parameters after the first `positional` taken from `dependencies`."""
    wanted = list(inspect.signature(function).parameters)[positional:]
    missing = [name for name in wanted if name not in dependencies]
    if missing:
        raise TypeError(
            f"{_name(function)} needs {', '.join(missing)}, which the bus was not given"
        )
    if not wanted:
        return function
    return functools.partial(function, **{name: dependencies[name] for name in wanted})


def _name(function: Any) -> str:
    return str(getattr(getattr(function, "func", function), "__qualname__", function))

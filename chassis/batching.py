"""Group commit: concurrent requests written together, one transaction for many (and, the
same way, concurrent reads of one kind read together in one query).

`GroupCommit.submit(item)` queues the item. If no batch is being written, a batch of whatever
is queued starts at once (no added wait when idle); while one is being written, new items
queue, and all of them go in the next batch, when the first is done. So under load each
commit carries what arrived during the previous one, and an idle caller waits for nothing.

`write(items)` (a blocking function: it runs in a worker thread, one hop per batch) returns,
for each item in order, its result or the exception that is its own error. If `write` itself
raises, the batch failed as a whole: when the database is away every caller gets that error;
otherwise the items are written again one at a time, so each gets its own result or error
and one bad item never fails the others. Items with the same `key` never share a batch, so
they are applied in the order they arrived, as if one after another (an idempotent retry sees
what the first wrote).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from chassis import db

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Write = Callable[[Sequence[T]], Sequence["R | Exception"]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        name: str,
        write: Write[T, R],
        key: Callable[[T], Hashable] | None = None,
        max_batch: int = 256,
    ) -> None:
        self.name = name
        self.write = write
        self.key = key
        self.max_batch = max_batch
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._writing = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Write `item` with whatever else is queued; its own result, or its own error."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._writing:
            self._writing = True
            self._task = asyncio.create_task(self._drain(), name=f"group commit {self.name}")
        return await future

    def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        later: list[tuple[T, asyncio.Future[R]]] = []
        while self._queue and len(batch) < self.max_batch:
            entry = self._queue.popleft()
            if self.key is not None:
                key = self.key(entry[0])
                if key in keys:
                    later.append(entry)  # after the one with the same key
                    continue
                keys.add(key)
            batch.append(entry)
        self._queue.extendleft(reversed(later))
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._next_batch()
                items = [item for item, _ in batch]
                try:
                    results = await asyncio.to_thread(self._write_all, items)
                except BaseException as exc:  # cancelled at shutdown, or a bug
                    # This batch and whatever queued behind it: nobody is left to write them.
                    error = exc if isinstance(exc, Exception) else RuntimeError("stopped")
                    for _, future in [*batch, *self._queue]:
                        if not future.done():
                            future.set_exception(error)
                    self._queue.clear()
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller went away (cancelled)
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writing = False

    def _write_all(self, items: list[T]) -> Sequence[R | Exception]:
        try:
            results = self.write(items)
        except Exception as exc:
            if len(items) == 1 or db.unavailable(exc):
                return [exc] * len(items)
            log.info("%s: a batch of %d failed (%r); one at a time", self.name, len(items), exc)
            return [self._write_one(item) for item in items]
        if len(results) != len(items):
            raise AssertionError(f"{self.name}: {len(results)} results for {len(items)} items")
        return results

    def _write_one(self, item: T) -> R | Exception:
        try:
            return self.write([item])[0]
        except Exception as exc:
            return exc


def first_of(results: Sequence[Any]) -> Any:
    """The only result of a batch of one: raised if it is an error."""
    (result,) = results
    if isinstance(result, Exception):
        raise result
    return result

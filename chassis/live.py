"""Live views for streaming RPCs: one database read per change, shared by every watcher, across
replicas.

After a transaction that changed an aggregate commits, the service calls `changed(id)`. The id
is marked dirty at once, and announced on a core NATS subject (`<subject>.<id>`, not JetStream:
nothing is stored) so that the feed of every other replica marks it too. A replica listens only
to what is watched there: an id's subject while the id has watchers, every id's while the
collection has some; a replica nobody watches hears nothing (a change costs the replicas that
care, not all of them). One reader task per
process reads the dirty ids somebody cares about, all in one query, and offers each value to
every subscription that wants it: the watchers of that id and the watchers of the feed's
collection (for orders: the kitchen queue). A thousand watchers of one change cost one read.

The reader also keeps the values it read in memory while they are watched (the collection's
members while the collection is), so a new watcher starts from them without a read of its
own; it re-reads whatever is watched every `resync` seconds, so a lost notification (NATS
away) delays a change but never loses it. Reads happen one after another in that one task,
so a watcher never sees a value older than one it already got.

A subscription holds, per id, the latest value not yet taken: a slow watcher skips
intermediate values instead of queueing them, and holds at most one value per id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import Counter

from chassis.periodic import Periodic

log = logging.getLogger(__name__)

V = TypeVar("V")

READS = Counter(
    "comanda_live_reads_total",
    "Database reads made by live views (shared by all watchers), by kind (ids, collection)",
    ["feed", "kind"],
)
RETRY_SECONDS = 1.0
FLUSH_SECONDS = 1  # how long a new subscription may take to reach NATS before reading anyway


class Subscription(Generic[V]):
    """What one watcher receives: the latest value of each id that changed since it last
    took them (None: the id does not exist)."""

    def __init__(self) -> None:
        self._pending: dict[str, V | None] = {}
        self._ready = asyncio.Event()
        self._error: BaseException | None = None

    def offer(self, key: str, value: V | None) -> None:
        self._pending[key] = value
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    def clear(self) -> None:
        self._pending = {}
        self._ready.clear()

    def check(self) -> None:
        """Raise the error of a read this subscription waited for, if any."""
        if self._error is not None:
            raise self._error

    async def ready(self) -> None:
        """Wait until something was offered (or the subscription failed)."""
        await self._ready.wait()

    async def next(self, timeout: float | None = None) -> dict[str, V | None]:
        """The values offered since the last call; waits for one, or returns {} after
        `timeout` seconds. Raises the error of a read that this subscription waited for."""
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self.check()
        taken, self._pending = self._pending, {}
        self._ready.clear()
        return taken


@dataclass(frozen=True)
class Members(Generic[V]):
    """A collection a feed can keep live, e.g. the orders of the kitchen queue."""

    load: Callable[[], list[V]]  # every member, in one query (runs in a worker thread)
    contains: Callable[[V], bool]  # whether a freshly read value belongs to it


class LiveFeed(Generic[V]):
    def __init__(
        self,
        name: str,
        subject: str,
        load: Callable[[list[str]], list[V]],
        key: Callable[[V], str],
        version: Callable[[V], Hashable],
        members: Members[V] | None = None,
        nc: NATS | None = None,
        resync: float = 5.0,
        listen: bool = True,
    ) -> None:
        """`load(ids)` reads the values of those ids in one query (runs in a worker thread;
        an id it does not return does not exist); `version(value)` changes whenever a
        watcher should hear about the value. Without `listen` (a process with no watchers,
        such as a service's worker) the feed only announces the changes committed here."""
        self.name = name
        self.subject = subject
        self.load = load
        self.key = key
        self.version = version
        self.members = members
        self.nc = nc
        self.resync = resync
        self.listen = listen
        self._origin = uuid.uuid4().hex.encode()  # to skip our own announcements
        self._loop: asyncio.AbstractEventLoop | None = None
        self.reader = Periodic(f"live view {name}", resync, self._read, backoff=RETRY_SECONDS)
        self._next_resync = time.monotonic() + resync
        self._dirty: set[str] = set()
        self._by_key: dict[str, set[Subscription[V]]] = {}
        self._all: set[Subscription[V]] = set()
        self._known: dict[str, V] = {}  # latest value of each watched id and member
        self._member_keys: set[str] = set()
        self._loaded = asyncio.Event()  # the members are in `_known`
        self._reload = False
        self._waiting_first: dict[str, set[Subscription[V]]] = {}
        self._waiting_snapshot: set[Subscription[V]] = set()
        # The NATS subscriptions of this replica's announcements, by id ("*": every id), and
        # the changes of interest not yet made to them (the reader makes them).
        self._following: dict[str, Any] = {}
        self._to_follow: set[str] = set()
        self._to_unfollow: set[str] = set()

    # -- notifications -----------------------------------------------------------------
    def changed(self, key: str) -> None:
        """The aggregate `key` changed (its transaction committed). Safe from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._announce, key)

    def _announce(self, key: str) -> None:
        self._mark(key)
        if self.nc is not None and self.nc.is_connected:
            task = asyncio.ensure_future(self.nc.publish(f"{self.subject}.{key}", self._origin))
            task.add_done_callback(_ignore_failure)

    async def _on_message(self, msg: Msg) -> None:
        if msg.data != self._origin:
            self._mark(msg.subject.rsplit(".", 1)[-1])

    def _mark(self, key: str) -> None:
        if self._all or key in self._by_key:
            self._dirty.add(key)
            self.reader.wake()

    # -- watching ----------------------------------------------------------------------
    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[Subscription[V]]:
        """Follow one id: its current value comes first (None if it does not exist), then
        each change."""
        sub: Subscription[V] = Subscription()
        if key not in self._by_key:
            self._interested(key)
        self._by_key.setdefault(key, set()).add(sub)
        if key in self._known:
            sub.offer(key, self._known[key])
        else:
            self._waiting_first.setdefault(key, set()).add(sub)
            self._dirty.add(key)
            self.reader.wake()
        try:
            yield sub
        finally:
            self._by_key[key].discard(sub)
            if not self._by_key[key]:
                del self._by_key[key]
                self._uninterested(key)
                if key not in self._member_keys:
                    self._known.pop(key, None)
            waiting = self._waiting_first.get(key)
            if waiting is not None:
                waiting.discard(sub)
                if not waiting:
                    del self._waiting_first[key]

    @contextlib.asynccontextmanager
    async def watch_members(self) -> AsyncIterator[tuple[list[V], Subscription[V]]]:
        """Follow the collection: its members now, then each value that changed and is or
        was a member (one that left is offered once with its new value)."""
        assert self.members is not None, f"feed {self.name} has no collection"
        sub: Subscription[V] = Subscription()
        if not self._all:
            self._interested("*")
        self._all.add(sub)
        try:
            while not self._loaded.is_set():
                self._waiting_snapshot.add(sub)
                self.reader.wake()
                await _first(self._loaded.wait(), sub.ready())
                sub.check()
                sub.clear()  # offered before the snapshot: the snapshot will hold it
            self._waiting_snapshot.discard(sub)
            # Synchronous from here: what the subscription was offered so far is in the
            # snapshot already.
            snapshot = [self._known[k] for k in self._member_keys]
            sub.clear()
            yield snapshot, sub
        finally:
            self._waiting_snapshot.discard(sub)
            self._all.discard(sub)
            if not self._all:
                self._uninterested("*")
                self._forget_members()

    def _interested(self, key: str) -> None:
        self._to_follow.add(key)
        self._to_unfollow.discard(key)

    def _uninterested(self, key: str) -> None:
        self._to_unfollow.add(key)
        self._to_follow.discard(key)

    async def _follow(self) -> None:
        """Subscribe to the announcements of what came to be watched, and drop those of what
        no longer is. A new subscription reaches the NATS server (a flush) before the reader
        reads what it covers, so a change committed after that read is heard; if NATS is
        away, the read goes ahead and the resync covers what is missed."""
        if self.nc is None or not self.listen:
            self._to_follow.clear()
            self._to_unfollow.clear()
            return
        follow, self._to_follow = self._to_follow, set()
        unfollow, self._to_unfollow = self._to_unfollow, set()
        try:
            for key in follow - self._following.keys():
                self._following[key] = await self.nc.subscribe(
                    f"{self.subject}.{key}", cb=self._on_message
                )
            if follow:
                await self.nc.flush(timeout=FLUSH_SECONDS)
        except Exception as exc:  # NATS away: the subscriptions made are renewed on reconnect
            log.info("live view %s: announcements not followed yet: %r", self.name, exc)
            # The rest are tried again at the next round (the resync covers the meantime).
            self._to_follow |= follow - self._following.keys() - self._to_unfollow
        for key in unfollow:
            subscription = self._following.pop(key, None)
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    def _forget_members(self) -> None:
        for key in self._member_keys:
            if key not in self._by_key:
                self._known.pop(key, None)
        self._member_keys = set()
        self._loaded.clear()

    # -- the reader --------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        """The reader: a periodic task woken by every change that matters, and run every
        `resync` seconds anyway; a failed read is retried soon (backing off up to a second)."""
        self._loop = asyncio.get_running_loop()
        if not self.listen:
            await stopping.wait()
            return
        try:
            await self.reader.run(stopping)
        finally:
            following, self._following = self._following, {}
            for subscription in following.values():
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    async def _read(self) -> int:
        now = time.monotonic()
        if now >= self._next_resync:  # read again whatever is watched, changed or not
            self._next_resync = now + self.resync
            self._dirty.update(self._by_key)
            self._reload = True
        try:
            await self.step()
        except Exception as exc:
            self._fail_first_waiters(exc)
            raise
        return 0

    async def step(self) -> None:
        """Read what is dirty and watched (and the collection if it must be loaded), and
        offer the values that changed. Tests call it directly."""
        if self._to_follow or self._to_unfollow:
            await self._follow()
        reload, self._reload = self._reload, False
        if self.members is not None and self._all and (reload or not self._loaded.is_set()):
            READS.labels(self.name, "collection").inc()
            fresh = await asyncio.to_thread(self.members.load)
            if self._all:  # nobody left while it was read
                present = set()
                for value in fresh:
                    key = self.key(value)
                    present.add(key)
                    self._apply(key, value)
                # Members that left without our hearing of it: read them below.
                self._dirty.update(self._member_keys - present)
                self._loaded.set()
        wanted = self._dirty if self._all else self._dirty & self._by_key.keys()
        self._dirty = set()
        if not wanted:
            return
        keys = sorted(wanted)
        READS.labels(self.name, "ids").inc()
        try:
            values = await asyncio.to_thread(self.load, keys)
        except Exception:
            self._dirty.update(wanted)
            raise
        found = {self.key(v): v for v in values}
        for key in keys:
            self._apply(key, found.get(key))

    def _apply(self, key: str, value: V | None) -> None:
        before = self._known.get(key)
        first = self._waiting_first.pop(key, set())
        changed = (before is None) != (value is None) or (
            before is not None and value is not None and self.version(before) != self.version(value)
        )
        was_member = key in self._member_keys
        is_member = (
            value is not None
            and self.members is not None
            and bool(self._all)
            and self.members.contains(value)
        )
        if is_member:
            self._member_keys.add(key)
        else:
            self._member_keys.discard(key)
        if value is not None and (is_member or key in self._by_key):
            self._known[key] = value
        else:
            self._known.pop(key, None)
        for sub in self._by_key.get(key, ()):
            if changed or sub in first:
                sub.offer(key, value)
        if (changed and (is_member or was_member)) or (is_member and not was_member):
            for sub in self._all:
                sub.offer(key, value)

    def _fail_first_waiters(self, error: BaseException) -> None:
        """A watcher still waiting for its first value gets the error (a stream that has
        started keeps waiting: the reader retries)."""
        waiting, self._waiting_first = self._waiting_first, {}
        for subs in waiting.values():
            for sub in subs:
                sub.fail(error)
        for sub in self._waiting_snapshot:
            sub.fail(error)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("live notification not sent: %r", task.exception())

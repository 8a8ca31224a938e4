"""The live feed's fan-out, with an in-memory store in place of the database: one read per
change shared by every watcher, snapshots from memory, leavers, coalescing, resync after a lost
notification, failures, and never a value older than one already seen."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nats.aio.client import Client as NATS

from chassis.live import LiveFeed, Members, Subscription
from tests.support.waiting import until, wait_for


@dataclass(frozen=True)
class Item:
    id: str
    status: str
    version: int


class Store:
    """What the database would hold, and how often it was read."""

    def __init__(self, *items: Item) -> None:
        self.items = {i.id: i for i in items}
        self.key_reads: list[list[str]] = []
        self.collection_reads = 0
        self.fail = False
        self.lock = threading.Lock()
        self.gate: threading.Event | None = None  # set: reads wait for it
        self.reading = threading.Event()  # a read has started (and waits at the gate)
        self.failed_reads = 0

    def put(self, id: str, status: str) -> Item:
        old = self.items.get(id)
        item = Item(id, status, old.version + 1 if old else 1)
        self.items[id] = item
        return item

    def load(self, ids: list[str]) -> list[Item]:
        self.reading.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            self.failed_reads += 1
            raise ConnectionError("database away")
        with self.lock:
            self.key_reads.append(list(ids))
            return [self.items[i] for i in ids if i in self.items]

    def load_active(self) -> list[Item]:
        if self.fail:
            raise ConnectionError("database away")
        with self.lock:
            self.collection_reads += 1
            return [i for i in self.items.values() if i.status == "active"]


def make_feed(store: Store, resync: float = 3600, nc: NATS | None = None) -> LiveFeed[Item]:
    return LiveFeed(
        "test",
        "test.live",
        load=store.load,
        key=lambda i: i.id,
        version=lambda i: i.version,
        members=Members(load=store.load_active, contains=lambda i: i.status == "active"),
        nc=nc,
        resync=resync,
    )


@contextlib.asynccontextmanager
async def running(feed: LiveFeed[Item]) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(feed.run(stopping))
    await asyncio.sleep(0)  # let it take the loop
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


async def next_of(sub: Subscription[Item], timeout: float = 5) -> dict[str, Item | None]:
    got = await sub.next(timeout)
    assert got, f"nothing offered within {timeout}s"
    return got


async def test_one_read_per_change_is_shared_by_every_watcher():
    store = Store(Item("a", "active", 1), Item("b", "new", 1))
    feed = make_feed(store)
    async with running(feed), contextlib.AsyncExitStack() as stack:
        watchers = [stack.enter_context(feed.watch("a")) for _ in range(50)]
        firsts = [await next_of(w) for w in watchers]
        assert all(f == {"a": Item("a", "active", 1)} for f in firsts)
        members = [await stack.enter_async_context(feed.watch_members()) for _ in range(50)]
        assert all(snapshot == [Item("a", "active", 1)] for snapshot, _ in members)
        reads_before = (len(store.key_reads), store.collection_reads)

        store.put("a", "active")
        feed.changed("a")
        for w in watchers:
            assert await next_of(w) == {"a": Item("a", "active", 2)}
        for _, sub in members:
            assert await next_of(sub) == {"a": Item("a", "active", 2)}

        assert (len(store.key_reads), store.collection_reads) == (
            reads_before[0] + 1,
            reads_before[1],
        ), f"expected one read for 100 watchers, got {store.key_reads}"


async def test_a_new_watcher_of_a_watched_id_or_a_member_needs_no_read():
    store = Store(Item("a", "active", 1), Item("b", "new", 1))
    feed = make_feed(store)
    async with running(feed), feed.watch_members() as (snapshot, _):
        assert snapshot == [Item("a", "active", 1)]
        with feed.watch("b") as first:
            assert await next_of(first) == {"b": Item("b", "new", 1)}
            reads = len(store.key_reads)
            with feed.watch("a") as member, feed.watch("b") as second:
                assert await next_of(member) == {"a": Item("a", "active", 1)}
                assert await next_of(second) == {"b": Item("b", "new", 1)}
            assert len(store.key_reads) == reads, "served from memory"
            async with feed.watch_members() as (again, _):
                assert again == [Item("a", "active", 1)]
            assert store.collection_reads == 1


async def test_members_see_arrivals_and_leavers_but_not_strangers():
    store = Store(Item("a", "active", 1))
    feed = make_feed(store)
    async with running(feed), feed.watch_members() as (snapshot, sub):
        assert snapshot == [Item("a", "active", 1)]
        store.put("x", "new")  # never a member: no news for the collection
        feed.changed("x")
        store.put("b", "active")  # arrives
        feed.changed("b")
        assert await next_of(sub) == {"b": Item("b", "active", 1)}
        store.put("a", "done")  # leaves: offered once, with its new value
        feed.changed("a")
        assert await next_of(sub) == {"a": Item("a", "done", 2)}
        store.put("a", "done")  # gone: no longer news
        feed.changed("a")
        store.put("b", "active")
        feed.changed("b")
        assert await next_of(sub) == {"b": Item("b", "active", 2)}
        async with feed.watch_members() as (later, _):
            assert sorted(later, key=lambda i: i.id) == [Item("b", "active", 2)]


async def test_changes_that_arrive_together_cost_one_read_and_a_slow_watcher_gets_the_latest():
    store = Store(Item("a", "active", 1), Item("b", "active", 1))
    feed = make_feed(store)
    async with running(feed):
        with feed.watch("a") as sub:
            await next_of(sub)
            reads = len(store.key_reads)
            store.gate = threading.Event()  # hold the next read while more changes come
            store.reading.clear()
            store.put("a", "active")
            feed.changed("a")
            await asyncio.to_thread(store.reading.wait, 5)  # a read is in progress
            for _ in range(4):
                store.put("a", "active")
                feed.changed("a")
            store.gate.set()
            got = await next_of(sub)
            while got["a"] is not None and got["a"].version < 6:
                got = await next_of(sub)
            assert got == {"a": Item("a", "active", 6)}
            assert len(store.key_reads) - reads <= 2, store.key_reads[reads:]


async def test_a_lost_notification_is_caught_up_by_the_resync():
    store = Store(Item("a", "active", 1))
    feed = make_feed(store, resync=0.2)
    async with running(feed), feed.watch_members() as (_, members):
        with feed.watch("a") as sub:
            await next_of(sub)
            store.put("a", "active")  # committed, but nobody says so
            store.put("c", "active")
            assert await next_of(sub, 3) == {"a": Item("a", "active", 2)}
            seen: dict[str, Item | None] = {}
            while "c" not in seen:
                seen.update(await next_of(members, 3))
            assert seen["c"] == Item("c", "active", 1)


async def test_a_failed_read_fails_the_watchers_still_waiting_and_spares_the_others():
    store = Store(Item("a", "active", 1), Item("b", "active", 1))
    feed = make_feed(store)
    async with running(feed):
        with feed.watch("a") as started:
            await next_of(started)
            store.fail = True
            with feed.watch("b") as waiting, pytest.raises(ConnectionError):
                await waiting.next(5)
            failed = store.failed_reads
            store.put("a", "active")
            feed.changed("a")
            await asyncio.to_thread(
                wait_for, lambda: store.failed_reads > failed, 5, "a failed read of a"
            )
            store.fail = False  # the reader retries by itself
            assert await next_of(started, 5) == {"a": Item("a", "active", 2)}


async def test_a_missing_id_is_offered_as_none():
    feed = make_feed(Store())
    async with running(feed):
        with feed.watch("nope") as sub:
            assert await next_of(sub) == {"nope": None}


async def test_a_watcher_never_sees_an_older_value_after_a_newer_one():
    store = Store(Item("a", "active", 1))
    feed = make_feed(store, resync=0.01)  # re-reads race with notifications all the time
    async with running(feed):
        with feed.watch("a") as sub:
            versions = [(await next_of(sub))["a"].version]  # type: ignore[union-attr]
            for _ in range(30):
                store.put("a", "active")
                feed.changed("a")
                got = await sub.next(0.02)
                if got:
                    versions.append(got["a"].version)  # type: ignore[union-attr]
            while versions[-1] < 31:
                versions.append((await next_of(sub))["a"].version)  # type: ignore[union-attr]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), versions


class FlakyNats:
    """Stands in for the NATS client where only the feed's subscriptions matter: the first
    `failures` subscriptions fail as if NATS were away."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.subjects: list[str] = []

    async def subscribe(self, subject: str, cb: object) -> object:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("nats away")
        self.subjects.append(subject)
        return self

    async def flush(self, timeout: int) -> None:
        pass

    async def unsubscribe(self) -> None:
        pass


async def test_a_watcher_is_served_while_nats_is_away_and_followed_once_it_is_back():
    store = Store(Item("a", "new", 1))
    nats = FlakyNats(failures=1)
    feed = make_feed(store, nc=nats)  # type: ignore[arg-type]
    async with running(feed):
        with feed.watch("a") as sub:
            assert await next_of(sub) == {"a": Item("a", "new", 1)}, "read despite NATS"
            assert nats.subjects == []
            feed.reader.wake()  # the next round subscribes again
            await until(lambda: nats.subjects == ["test.live.a"], 5, "the subscription made")

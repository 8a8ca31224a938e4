"""The live feed across replicas, over a real NATS server: a change committed by one replica
reaches the watchers of another, and a replica hears only the announcements of what is
watched there (an id's while it has watchers, every id's while the collection has some)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
from nats.aio.msg import Msg

from chassis.live import LiveFeed
from tests.support.waiting import until
from tests.unit.chassis.test_live import Item, Store, make_feed, next_of


class Replica:
    """A feed with its own NATS connection, counting the announcements it receives."""

    def __init__(self, feed: LiveFeed[Item]) -> None:
        self.feed = feed
        self.heard: list[str] = []
        on_message = feed._on_message

        async def counting(msg: Msg) -> None:
            self.heard.append(msg.subject.rsplit(".", 1)[-1])
            await on_message(msg)

        feed._on_message = counting  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def replicas(url: str, store: Store, count: int = 2) -> AsyncIterator[list[Replica]]:
    connections = [await nats.connect(url) for _ in range(count)]
    stopping = asyncio.Event()
    made = [
        Replica(make_feed(store, nc=nc))  # no resync: what arrives, arrives by announcement
        for nc in connections
    ]
    tasks = [asyncio.create_task(r.feed.run(stopping)) for r in made]
    try:
        yield made
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        for nc in connections:
            await nc.close()


async def announce(replica: Replica, store: Store, key: str, status: str) -> Item:
    item = store.put(key, status)
    replica.feed.changed(key)
    return item


async def test_a_change_by_one_replica_reaches_the_watchers_of_another(nats_server):
    store = Store(Item("a", "new", 1), Item("b", "new", 1))
    async with replicas(nats_server.url, store) as (writer, watching):
        with watching.feed.watch("a") as sub:
            assert await next_of(sub) == {"a": Item("a", "new", 1)}
            changed = await announce(writer, store, "a", "paid")
            assert await next_of(sub) == {"a": changed}


async def test_a_replica_hears_only_what_is_watched_there(nats_server):
    store = Store(Item("a", "new", 1), Item("b", "new", 1))
    async with replicas(nats_server.url, store) as (writer, watching):
        for n in range(20):  # nobody watches anything on the other replica
            await announce(writer, store, "a" if n % 2 else "b", "new")
        with watching.feed.watch("a") as sub:
            assert await next_of(sub) == {"a": store.items["a"]}
            await announce(writer, store, "b", "new")
            latest = await announce(writer, store, "a", "paid")
            assert await next_of(sub) == {"a": latest}
        assert watching.heard == ["a"], "only the watched id's announcement, once"

        # The watcher left: its subscription goes at the reader's next round.
        watching.feed.reader.wake()
        await until(lambda: not watching.feed._following, 5, "the subscription dropped")
        await announce(writer, store, "a", "done")
        # The writer's own announcement makes its round trip through NATS only if it listens.
        await writer.feed.nc.flush()  # type: ignore[union-attr]
        await watching.feed.nc.flush()  # type: ignore[union-attr]
        assert watching.heard == ["a"]


async def test_the_collection_hears_every_id_while_it_is_watched(nats_server):
    store = Store(Item("a", "active", 1), Item("b", "new", 1))
    async with replicas(nats_server.url, store) as (writer, watching):
        async with watching.feed.watch_members() as (snapshot, sub):
            assert snapshot == [Item("a", "active", 1)]
            arrived = await announce(writer, store, "b", "active")
            assert await next_of(sub) == {"b": arrived}
            left = await announce(writer, store, "a", "done")
            assert await next_of(sub) == {"a": left}
        assert sorted(watching.heard) == ["a", "b"]
        watching.feed.reader.wake()
        await until(lambda: not watching.feed._following, 5, "the subscription dropped")

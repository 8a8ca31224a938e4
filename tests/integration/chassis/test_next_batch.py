"""How the consumer takes its batches from real JetStream (`Puller.next_batch`): what is
waiting, at once, and otherwise the first message as soon as it comes, never waiting for a
batch to fill. (nats-py's `fetch(64)` could hold a message for its whole timeout, waiting for
63 more: at 150 orders/s that was the second of the saga's worst latencies.)"""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.errors import ConnectionClosedError
from nats.js import api
from nats.js.errors import APIError, ServiceUnavailableError

from chassis.messaging.consumer import Puller
from tests.support.waiting import until

WAIT = 30.0  # next_batch's wait for a first message: far longer than any test deadline
DEADLINE = 10.0


async def _consumer(nats_url: str, replicas: int = 1):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(name="BATCHES", subjects=["batches.>"])
    await js.add_consumer(
        "BATCHES", api.ConsumerConfig(durable_name="taker", ack_policy=api.AckPolicy.EXPLICIT)
    )
    pullers = [await Puller.bind(nc, "BATCHES", "taker") for _ in range(replicas)]
    return nc, js, pullers


async def _until(js, condition, what: str) -> None:
    """Wait (DEADLINE at most) until the consumer's info meets `condition`."""

    async def met() -> bool:
        return bool(condition(await js.consumer_info("BATCHES", "taker")))

    await until(met, DEADLINE, what)


async def _cleanup(nc, js) -> None:
    await js.delete_stream("BATCHES")
    await nc.close()


async def test_what_is_waiting_comes_in_one_batch(nats_server):
    nc, js, (puller,) = await _consumer(nats_server.url)
    try:
        for i in range(5):
            await js.publish(f"batches.{i}", str(i).encode())
        batch = await asyncio.wait_for(puller.next_batch(64, WAIT), DEADLINE)
        assert [m.data for m in batch] == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        await _cleanup(nc, js)


async def test_a_batch_never_waits_to_fill(nats_server):
    """A consumer that is idle gets the first message that comes, alone, at once, even after
    a late status answer of an earlier request reached its inbox; a second one published only
    after that is the next batch."""
    nc, js, (puller,) = await _consumer(nats_server.url)
    try:
        # An earlier request, given up on, whose "no messages" answer nobody read.
        await nc.publish(
            puller._subject,
            json.dumps({"batch": 8, "no_wait": True}).encode(),
            reply=f"{puller._inbox}.0",
        )
        waiting = asyncio.create_task(puller.next_batch(64, WAIT))
        await _until(js, lambda info: info.num_waiting >= 1, "next_batch waiting, idle")
        await js.publish("batches.a", b"a")
        batch = await asyncio.wait_for(waiting, DEADLINE)
        assert [m.data for m in batch] == [b"a"]
        await js.publish("batches.b", b"b")
        batch = await asyncio.wait_for(puller.next_batch(64, WAIT), DEADLINE)
        assert [m.data for m in batch] == [b"b"]
    finally:
        await _cleanup(nc, js)


async def test_one_request_a_batch(nats_server):
    """A batch costs one pull request, whether the messages were waiting or came later."""
    nc, js, (puller,) = await _consumer(nats_server.url)
    requests: list[bytes] = []

    async def seen(msg) -> None:
        requests.append(msg.data)

    spy = await nc.subscribe(puller._subject, cb=seen)
    try:
        await nc.flush()
        for i in range(3):
            await js.publish(f"batches.{i}", str(i).encode())
        assert len(await asyncio.wait_for(puller.next_batch(64, WAIT), DEADLINE)) == 3
        waiting = asyncio.create_task(puller.next_batch(64, WAIT))
        await _until(js, lambda info: info.num_waiting >= 1, "next_batch waiting, idle")
        await js.publish("batches.late", b"late")
        assert [m.data for m in await asyncio.wait_for(waiting, DEADLINE)] == [b"late"]
        await nc.flush()
        assert len(requests) == 2
    finally:
        await spy.unsubscribe()
        await _cleanup(nc, js)


async def test_nothing_within_the_wait_is_an_empty_batch(nats_server):
    nc, js, (puller,) = await _consumer(nats_server.url)
    try:
        assert await asyncio.wait_for(puller.next_batch(64, 0.2), DEADLINE) == []
        await js.publish("batches.a", b"a")  # the expired request took nothing with it
        batch = await asyncio.wait_for(puller.next_batch(64, WAIT), DEADLINE)
        assert [m.data for m in batch] == [b"a"]
    finally:
        await _cleanup(nc, js)


async def test_two_replicas_take_every_message_once_without_waiting_for_batches(nats_server):
    nc, js, pullers = await _consumer(nats_server.url, replicas=2)
    taken: list[bytes] = []
    all_taken = asyncio.Event()
    try:

        async def take(puller: Puller) -> None:
            while True:
                for msg in await puller.next_batch(64, WAIT):
                    taken.append(msg.data)
                    await msg.ack()
                if len(taken) >= 100:
                    all_taken.set()

        takers = [asyncio.create_task(take(puller)) for puller in pullers]
        for i in range(100):
            await js.publish(f"batches.{i}", str(i).encode())
            await asyncio.sleep(0.002)
        # Each message as it comes: the last one too, without 63 more to fill a batch.
        await asyncio.wait_for(all_taken.wait(), DEADLINE)
        for task in takers:
            task.cancel()
        assert sorted(taken, key=int) == [str(i).encode() for i in range(100)]
    finally:
        await _cleanup(nc, js)


async def test_with_a_linger_what_comes_meanwhile_joins_the_batch(nats_server):
    """The linger comes before the request: nothing is taken from JetStream while it lasts
    (so nothing is held if the process dies or NATS goes away then)."""
    nc, js, (puller,) = await _consumer(nats_server.url)
    try:
        await js.publish("batches.a", b"a")
        taking = asyncio.create_task(puller.next_batch(64, WAIT, linger=5.0))
        await js.publish("batches.b", b"b")
        info = await js.consumer_info("BATCHES", "taker")
        assert (info.num_ack_pending, info.num_pending) == (0, 2)
        batch = await asyncio.wait_for(taking, DEADLINE)
        assert [m.data for m in batch] == [b"a", b"b"]
    finally:
        await _cleanup(nc, js)


async def test_when_nats_goes_away_during_the_linger_the_request_fails_and_nothing_is_taken(
    nats_server,
):
    nc, js, (puller,) = await _consumer(nats_server.url)
    admin = await nats.connect(nats_server.url)
    try:
        await js.publish("batches.a", b"a")
        taking = asyncio.create_task(puller.next_batch(64, WAIT, linger=3.0))
        await nc.close()
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(taking, DEADLINE)
        info = await admin.jetstream().consumer_info("BATCHES", "taker")
        assert (info.num_ack_pending, info.num_pending) == (0, 1)
    finally:
        await _cleanup(admin, admin.jetstream())


async def test_a_consumer_that_is_gone_is_an_error_at_once_not_an_empty_wait(nats_server):
    """The consumer's loop logs it and pauses (`EventConsumer.run`), instead of asking again
    and again for nothing."""
    nc, js, (puller,) = await _consumer(nats_server.url)
    try:
        waiting = asyncio.create_task(puller.next_batch(64, WAIT))
        await _until(js, lambda info: info.num_waiting >= 1, "next_batch waiting, idle")
        await js.delete_consumer("BATCHES", "taker")
        with pytest.raises(APIError, match="409"):
            await asyncio.wait_for(waiting, DEADLINE)
        missing = await Puller.bind(nc, "BATCHES", "missing")
        with pytest.raises(ServiceUnavailableError):
            await asyncio.wait_for(missing.next_batch(64, WAIT), DEADLINE)
    finally:
        await _cleanup(nc, js)


async def test_a_request_nobody_answers_ends_after_its_wait_with_an_empty_batch(nats_server):
    """No answer at all (a server gone quiet): the batch ends empty soon after the request's
    own expiry, so the consumer's loop asks again instead of hanging."""
    nc = await nats.connect(nats_server.url)
    puller = await Puller.bind(nc, "NOBODY", "silent")
    silent = await nc.subscribe(puller._subject)  # takes the requests, answers none
    try:
        await nc.flush()
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(puller.next_batch(64, 0.2), DEADLINE) == []
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert (await silent.next_msg(timeout=DEADLINE)).reply.startswith(puller._inbox)
    finally:
        await nc.close()

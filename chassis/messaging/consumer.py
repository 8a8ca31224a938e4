"""Durable pull consumers with an inbox: effectively-once processing of saga events.

A service's consumer subscribes to exactly the event types its message bus has handlers for
(`subscription`), and hands each event to the bus. Each fetched batch is decoded (an
undecodable message is dead-lettered and terminated at once), then applied in one
transaction: for each event, record `(consumer, event_id)` in the inbox and apply the
handler's effect; commit, then ack them all. A redelivered event finds its inbox row and
changes nothing.

Events are applied sorted by (aggregate id, stream sequence), not in arrival order: the rows they
lock are then always taken in one global order, so two replicas applying overlapping batches
cannot deadlock. What is not a message's fault never uses up its deliveries: a lock conflict
(deadlock, serialization failure) is retried at once, a database outage is waited out, and
meanwhile the messages are kept in progress (no redelivery). If anything else in a batch
fails, the transaction is rolled back and the messages are applied one at a time: a failing
one is retried by this process with growing delays, and after `max_deliver` failed attempts
it is dead-lettered and terminated, so a poison message never blocks the others. JetStream's
own delivery limit is only a backstop for a message that never gets an answer (the process
dies on it every time): its last delivery is dead-lettered without being applied (see
`ConsumerSpec.unanswered_deliveries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import APIError

from chassis import db, faults, logs, metrics
from chassis.errors import DomainError
from chassis.messagebus import MessageBus, U
from chassis.messaging import codec
from chassis.messaging.codec import EventCodec
from chassis.messaging.jetstream import DEAD_LETTER_PREFIX, ConsumerSpec, stream_name
from chassis.outcomes import DUPLICATE, Outcome
from chassis.periodic import busy
from chassis.repository import Prepared

log = logging.getLogger(__name__)

DLQ_REASON = "Comanda-Dead-Letter-Reason"
DLQ_SUBJECT = "Comanda-Original-Subject"
DLQ_DELIVERIES = "Comanda-Deliveries"
DLQ_CONSUMER = "Comanda-Consumer"
DLQ_HEADERS = (DLQ_REASON, DLQ_SUBJECT, DLQ_DELIVERIES, DLQ_CONSUMER)


class Puller:
    """A durable pull consumer's own pull requests, each taking the next batch in one round
    trip: JetStream answers a request made with both `no_wait` and `expires` by waiting (up to
    `expires`) for the first message, then sending what is waiting at that moment, up to the
    batch, and ending with a "no messages" status. A message is never held waiting for others
    to fill a batch.

    Not nats-py's `fetch`: `fetch(size)` returns only when `size` messages came or its timeout
    passed (at 150 orders/s that held a message up to a second), and `fetch(1)` followed by a
    no-wait request for the rest took two requests and two round trips a batch. Each request
    here has its own reply subject (under one wildcard subscription), so a late status answer
    of an earlier request (one given up on when NATS went away) cannot end a later one."""

    def __init__(self, nc: NATS, subject: str, inbox: str, sub: Subscription) -> None:
        self._nc = nc
        self._subject = subject
        self._inbox = inbox
        self._sub = sub
        self._requests = 0

    @classmethod
    async def bind(cls, nc: NATS, stream: str, durable: str) -> Puller:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(f"{inbox}.*")
        return cls(nc, f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}", inbox, sub)

    async def next_batch(self, size: int, wait: float = 1.0, linger: float = 0.0) -> list[Msg]:
        """The next batch of at most `size` messages: after `linger` seconds (for more to
        come), what is waiting, or else the first message that comes within `wait` seconds
        (none: an empty batch)."""
        if linger:
            await asyncio.sleep(linger)
        self._requests += 1
        reply = f"{self._inbox}.{self._requests}"
        request = {"batch": size, "expires": int(wait * 1e9), "no_wait": True}
        await self._nc.publish(self._subject, json.dumps(request).encode(), reply=reply)
        messages: list[Msg] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait + _ANSWER_SECONDS
        while len(messages) < size:
            try:
                msg = await self._sub.next_msg(timeout=max(deadline - loop.time(), 0.001))
            except TimeoutError:  # no answer (NATS away or slow): take what came
                break
            status = JetStreamContext.is_status_msg(msg)
            if not status:
                if not messages:  # the rest of the batch is sent at once
                    deadline = loop.time() + _ANSWER_SECONDS
                messages.append(msg)
            elif msg.subject != reply or status == "100":
                continue  # an earlier request's answer, or a heartbeat
            elif status in ("404", "408"):
                break  # no more waiting now, or nothing came within `wait`
            elif messages:
                log.warning("pull request %s ended: %s %s", self._subject, status, msg.headers)
                break
            else:
                raise APIError.from_msg(msg)
        return messages

    async def unsubscribe(self) -> None:
        await self._sub.unsubscribe()


# How long the rest of a batch, or an expired request's status, may take to arrive after the
# first message or the request's expiry (it is normally under a millisecond).
_ANSWER_SECONDS = 1.0


def subscription(
    durable: str, codec: EventCodec, message_types: Sequence[type[Any]]
) -> ConsumerSpec:
    """The durable consumer of `message_types` (a bus's table): it filters on exactly their
    subjects, so an event type is received if and only if it has a handler. They must be
    events of `codec`, all in one stream."""
    subjects = [codec.subject(kind) for kind in message_types]
    streams = sorted({stream_name(subject) for subject in subjects})
    if len(streams) != 1:
        raise ValueError(f"consumer {durable}: its events must be in one stream, not {streams}")
    return ConsumerSpec(
        stream=streams[0], durable=durable, filter_subjects=tuple(f"{s}.>" for s in subjects)
    )


class EventConsumer(Generic[U]):
    def __init__(
        self,
        nc: NATS,
        spec: ConsumerSpec,
        bus: MessageBus[U],
        uow_factory: Callable[[], U],
        codec: EventCodec,
        service: str,
        batch_size: int = 64,
        linger: float = 0.0,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.spec = spec
        self.bus = bus
        self.uow_factory = uow_factory
        self.codec = codec
        self.service = service
        self.batch_size = batch_size
        self.linger = linger
        self._retries: set[asyncio.Task[None]] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        puller = await Puller.bind(self.nc, self.spec.stream, self.spec.durable)
        advisories = await self.nc.subscribe(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.spec.stream}.{self.spec.durable}",
            cb=self._on_max_deliveries,
        )
        try:
            linger = 0.0  # after a batch of more than one (see Periodic), to gather the next
            while not stopping.is_set():
                try:
                    messages = await puller.next_batch(self.batch_size, linger=linger)
                except Exception as exc:  # disconnected, server restarting, ...
                    if stopping.is_set():
                        break
                    log.warning("consumer %s: fetch failed: %s", self.spec.durable, exc)
                    await asyncio.sleep(0.5)
                    continue
                linger = self.linger if busy(len(messages), self.batch_size) else 0.0
                await self._process_batch(messages)
        finally:
            for task in self._retries:
                task.cancel()  # their messages are redelivered after the ack wait
            await advisories.unsubscribe()
            await puller.unsubscribe()

    async def _process_batch(self, messages: list[Msg]) -> None:
        """Apply a fetched batch in one transaction (one commit for all); if anything in it
        fails, roll back and take the messages one at a time, so the failing one is retried or
        dead-lettered on its own."""
        readable: list[tuple[Msg, Any]] = []
        for msg in messages:
            if msg.metadata.num_delivered >= self.spec.unanswered_deliveries:
                await self._last_delivery(msg)
                continue
            event = await self._decode(msg)
            if event is not None:
                readable.append((msg, event))
        if not readable:
            return
        # One lock order for every transaction: by aggregate id, and by stream position (the
        # same in every delivery) within one aggregate.
        readable.sort(key=lambda m: (self.codec.aggregate_id(m[1]), m[0].metadata.sequence.stream))
        try:
            outcomes = await self._apply(readable)
        except Exception as exc:
            if len(readable) > 1:
                log.info("consumer %s: batch failed (%r); one at a time", self.spec.durable, exc)
            for msg, event in readable:
                await self._process_one(msg, event)
            return
        for (msg, event), outcome in zip(readable, outcomes, strict=True):
            await self._done(msg, event, outcome)

    async def _apply(self, batch: list[tuple[Msg, Any]]) -> list[Outcome]:
        """`_apply_all`, run again for as long as it fails for reasons that are not the
        messages' own: a lock conflict (at once, after a short random pause) or the database
        being away (once it answers). The messages are kept meanwhile, spending no delivery."""
        conflicts = 0
        async with self._keeping(batch):
            while True:
                try:
                    return await asyncio.to_thread(self._apply_all, batch)
                except Exception as exc:
                    if db.conflict(exc):
                        conflicts += 1
                        metrics.CONSUMER_CONFLICTS.labels(self.service, self.spec.durable).inc()
                        log.warning(
                            "consumer %s: lock conflict (%s); retrying at once (%d)",
                            self.spec.durable,
                            db.first_line(exc),
                            conflicts,
                        )
                        await asyncio.sleep(random.uniform(0, min(0.02 * 2**conflicts, 1.0)))
                    elif db.unavailable(exc):
                        await self._wait_for_database(exc)
                    else:
                        raise

    @contextlib.asynccontextmanager
    async def _keeping(self, batch: list[tuple[Msg, Any]]) -> AsyncIterator[None]:
        """While inside, tell JetStream every third of the ack wait that the messages are in
        progress, so it does not redeliver them (nor count a delivery) while this process
        still works on them or waits for the database."""

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.spec.ack_wait_seconds / 3)
                for msg, _event in batch:
                    await _quietly(msg.in_progress())

        task = asyncio.create_task(heartbeat())
        try:
            yield
        finally:
            task.cancel()

    async def _wait_for_database(self, exc: BaseException) -> None:
        """The database is away: that says nothing about the messages. Fetch and apply nothing
        until it answers again."""
        log.warning(
            "consumer %s: database unavailable (%s); pausing", self.spec.durable, db.first_line(exc)
        )
        delay = 0.5
        engine = self.uow_factory().engine
        while True:
            try:
                await asyncio.to_thread(db.check_connection, engine)
                break
            except Exception:  # still away, whatever it says
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        log.info("consumer %s: database back; resuming", self.spec.durable)

    async def _decode(self, msg: Msg) -> Any | None:
        """The event in a message; None (after dead-lettering it) when it cannot be read."""
        headers = msg.headers or {}
        event_type = headers.get(codec.EVENT_TYPE_HEADER, "")
        try:
            return self.codec.decode(event_type, msg.data)
        except codec.UndecodableEvent as exc:
            _enter(msg)
            await self._give_up(msg, str(exc), msg.metadata.num_delivered, event_type)
            return None

    async def _last_delivery(self, msg: Msg) -> None:
        """JetStream's last delivery of a message that was never answered (each earlier
        delivery ended with its process, say): dead-lettered without being applied, so a
        message that kills its consumer cannot kill it once more and then be left neither
        acked nor dead-lettered. (The max-deliveries advisory does the same, but only for a
        process that is listening when it is sent.)"""
        _enter(msg)
        deliveries = msg.metadata.num_delivered
        event_type = (msg.headers or {}).get(codec.EVENT_TYPE_HEADER, "")
        reason = f"delivered {deliveries} times without an answer; not applied"
        await self._give_up(msg, reason, deliveries, event_type)

    async def _process_one(self, msg: Msg, event: Any, failures: int = 0) -> None:
        """Apply one event; a failure of its own is retried by this process after a delay
        (the message kept in progress meanwhile) until `max_deliver` attempts have failed."""
        _enter(msg)
        event_type = event.DESCRIPTOR.full_name
        try:
            (outcome,) = await self._apply([(msg, event)])
        except DomainError as exc:
            await self._give_up(msg, f"rejected by handler: {exc}", failures + 1, event_type)
            return
        except Exception as exc:
            failures += 1
            if failures >= self.spec.max_deliver:
                await self._give_up(
                    msg, f"failed {failures} times, last: {exc!r}", failures, event_type
                )
                return
            delay = self.spec.retry_delays[min(failures, len(self.spec.retry_delays)) - 1]
            log.warning(
                "consumer %s: %s failed (attempt %d), retrying in %.1fs: %r",
                self.spec.durable,
                event_type,
                failures,
                delay,
                exc,
            )
            metrics.EVENTS_CONSUMED.labels(
                self.service, self.spec.durable, event_type, "retried"
            ).inc()
            task = asyncio.create_task(self._retry(msg, event, failures, delay))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
            return
        await self._done(msg, event, outcome)

    async def _retry(self, msg: Msg, event: Any, failures: int, delay: float) -> None:
        async with self._keeping([(msg, event)]):
            await asyncio.sleep(delay)
        await self._process_one(msg, event, failures)

    async def _done(self, msg: Msg, event: Any, outcome: Outcome) -> None:
        _enter(msg)
        await _quietly(msg.ack())
        event_type = event.DESCRIPTOR.full_name
        metrics.EVENTS_CONSUMED.labels(
            self.service, self.spec.durable, event_type, outcome.result.value
        ).inc()
        log.info(
            "consumed %s %s: %s",
            event_type.rsplit(".", 1)[-1],
            event.event_id,
            outcome,
            extra={
                "consumer": self.spec.durable,
                "event_type": event_type,
                "event_id": event.event_id,
                "deliveries": msg.metadata.num_delivered,
            },
        )

    def _apply_all(self, batch: list[tuple[Msg, Any]]) -> list[Outcome]:
        """Inbox rows and effects of a batch in one transaction; DUPLICATE for an event that
        was handled before (its inbox row exists). The inbox rows are claimed in one
        statement, the events handed to the bus together (a batched handler writes a run of
        them in one statement), and the events they cause carry their message's request id (the
        last one's, for two messages about one aggregate in a batch)."""
        with self.uow_factory() as uow:
            claimed = self._claim(uow, batch)
            fresh = []
            for msg, event in batch:
                if event.event_id in claimed:
                    claimed.discard(event.event_id)  # a second copy in one batch is a duplicate
                    _enter(msg)
                    uow.origins[self.codec.aggregate_id(event)] = db.Origin.current()
                    fresh.append(event)
            if fresh:
                faults.fail("consumer.handler")
                uow.lock([self.codec.aggregate_id(event) for event in fresh])
            handled = dict(
                zip(
                    (id(event) for event in fresh),
                    self.bus.handle_many(fresh, uow),
                    strict=True,
                )
            )
            outcomes = [handled.get(id(event), DUPLICATE) for _, event in batch]
            if fresh:
                _OUTCOMES.run(
                    uow.connection,
                    {
                        "ids": [e.event_id for e in fresh],
                        "outcomes": [str(handled[id(e)])[:500] for e in fresh],
                        "consumer": self.spec.durable,
                    },
                )
            uow.commit()
            faults.crash("consumer.after_commit")
        return outcomes

    def _claim(self, uow: U, batch: list[tuple[Msg, Any]]) -> set[str]:
        """Record the batch's events in the inbox; the ids of those not recorded before."""
        rows = _CLAIM.run(
            uow.connection,
            {
                "consumer": self.spec.durable,
                "ids": [event.event_id for _, event in batch],
                "types": [event.DESCRIPTOR.full_name for _, event in batch],
                "subjects": [msg.subject for msg, _ in batch],
                "aggregates": [self.codec.aggregate_id(event) for _, event in batch],
            },
        )
        return {row[0] for row in rows}

    async def _give_up(self, msg: Msg, reason: str, deliveries: int, event_type: str) -> None:
        """Dead-letter the message, then terminate it; if that fails, leave it for redelivery."""
        try:
            await dead_letter(
                self.nc,
                msg.subject,
                msg.data,
                msg.headers or {},
                self.spec.durable,
                reason,
                deliveries,
                f"{self.spec.stream}:{msg.metadata.sequence.stream}",
            )
        except Exception as exc:
            log.error(
                "consumer %s: cannot dead-letter (%s); will retry: %r",
                self.spec.durable,
                reason,
                exc,
            )
            await _quietly(msg.nak(delay=self.spec.retry_delays[-1]))
            return
        metrics.DEAD_LETTERS.labels(self.service, self.spec.durable).inc()
        metrics.EVENTS_CONSUMED.labels(
            self.service, self.spec.durable, event_type or "unknown", "dead_lettered"
        ).inc()
        log.error("consumer %s: dead-lettered %s: %s", self.spec.durable, msg.subject, reason)
        await _quietly(msg.term())

    async def _on_max_deliveries(self, advisory: Msg) -> None:
        """A message whose deliveries ran out without an answer (e.g. the process crashed
        each time): fetch it from the stream and dead-letter it."""
        try:
            info = json.loads(advisory.data)
            raw = await self.js.get_msg(self.spec.stream, int(info["stream_seq"]))
            await dead_letter(
                self.nc,
                raw.subject or "",
                raw.data or b"",
                dict(raw.headers or {}),
                self.spec.durable,
                "max deliveries reached without an ack",
                int(info.get("deliveries", 0)),
                f"{self.spec.stream}:{info['stream_seq']}",
            )
            metrics.DEAD_LETTERS.labels(self.service, self.spec.durable).inc()
        except Exception as exc:
            log.error(
                "consumer %s: cannot dead-letter after max deliveries: %r", self.spec.durable, exc
            )


async def dead_letter(
    nc: NATS,
    subject: str,
    data: bytes,
    headers: dict[str, str],
    consumer: str,
    reason: str,
    deliveries: int,
    source: str,
) -> None:
    """Publish to `deadletter.<consumer>` with the reason, original subject and deliveries."""
    dlq_headers = {k: v for k, v in headers.items() if k not in DLQ_HEADERS}
    dlq_headers.update(
        {
            DLQ_REASON: reason.replace("\r", " ").replace("\n", " ")[:1000],
            DLQ_SUBJECT: subject,
            DLQ_DELIVERIES: str(deliveries),
            DLQ_CONSUMER: consumer,
            # One dead letter per (consumer, stream message), even if this runs twice.
            codec.MSG_ID_HEADER: f"dlq:{consumer}:{source}",
        }
    )
    await nc.jetstream().publish(
        f"{DEAD_LETTER_PREFIX}.{consumer}", data, headers=dlq_headers, timeout=5
    )


# (The inbox's aggregate id column is named order_id: see chassis.messaging.schema.)
_CLAIM = Prepared("""
INSERT INTO inbox (consumer, event_id, event_type, subject, order_id, outcome)
SELECT %(consumer)s, e.*, ''
FROM unnest(%(ids)s::uuid[], %(types)s::text[], %(subjects)s::text[], %(aggregates)s::text[])
     AS e(event_id, event_type, subject, aggregate_id)
ON CONFLICT DO NOTHING
RETURNING event_id::text""")
# The event ids also as `= ANY(...)`, so the inbox's key is the index condition whatever the
# statistics say (as in chassis.repository.StateChanges).
_OUTCOMES = Prepared("""
UPDATE inbox SET outcome = v.outcome
FROM unnest(%(ids)s::uuid[], %(outcomes)s::text[]) AS v(event_id, outcome)
WHERE inbox.consumer = %(consumer)s AND inbox.event_id = v.event_id
  AND inbox.event_id = ANY(%(ids)s::uuid[])""")


def _enter(msg: Msg) -> None:
    """Put the message's request id and aggregate id (its subject's last token) in the logging
    context."""
    headers = msg.headers or {}
    logs.request_id_var.set(headers.get(codec.REQUEST_ID_HEADER, ""))
    logs.aggregate_id_var.set(msg.subject.rsplit(".", 1)[-1])


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:  # the ack is lost: redelivery and the inbox take care of it
        log.warning("ack/nak failed: %r", exc)

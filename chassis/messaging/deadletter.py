"""Dead letters: list them and replay them to their original subject.

    python -m chassis.messaging.deadletter list
    python -m chassis.messaging.deadletter replay [--consumer NAME]

A replayed message keeps its event id (so every consumer's inbox still recognises it) but
gets a new `Nats-Msg-Id`, so JetStream's duplicate window does not drop it. It is deleted
from the dead-letter stream only after the republish was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError

from chassis.messaging import codec
from chassis.messaging.consumer import (
    DLQ_CONSUMER,
    DLQ_DELIVERIES,
    DLQ_HEADERS,
    DLQ_REASON,
    DLQ_SUBJECT,
)
from chassis.messaging.jetstream import NatsUnavailable, connect

STREAM = "DEADLETTER"


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    consumer: str
    subject: str
    reason: str
    deliveries: int
    event_type: str
    data: bytes
    headers: dict[str, str]


async def list_dead_letters(nc: NATS, consumer: str | None = None) -> list[DeadLetter]:
    js = nc.jetstream()
    letters: list[DeadLetter] = []
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        return letters  # no service has set up its streams on this server: nothing dead yet
    if info.state.messages == 0:
        return letters
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            raw = await js.get_msg(STREAM, seq)
        except NotFoundError:
            continue  # deleted (replayed)
        headers = dict(raw.headers or {})
        letter = DeadLetter(
            sequence=seq,
            consumer=headers.get(DLQ_CONSUMER, ""),
            subject=headers.get(DLQ_SUBJECT, ""),
            reason=headers.get(DLQ_REASON, ""),
            deliveries=int(headers.get(DLQ_DELIVERIES, "0") or 0),
            event_type=headers.get(codec.EVENT_TYPE_HEADER, ""),
            data=raw.data or b"",
            headers=headers,
        )
        if consumer is None or letter.consumer == consumer:
            letters.append(letter)
    return letters


async def replay(nc: NATS, consumer: str | None = None) -> int:
    """Republish dead letters to their original subjects; returns how many."""
    js = nc.jetstream()
    count = 0
    for letter in await list_dead_letters(nc, consumer):
        headers = {k: v for k, v in letter.headers.items() if k not in DLQ_HEADERS}
        event_id = (
            headers.get(codec.MSG_ID_HEADER, "").split(":replay:")[0] or f"dlq{letter.sequence}"
        )
        headers[codec.MSG_ID_HEADER] = f"{event_id}:replay:{letter.sequence}"
        await js.publish(letter.subject, letter.data, headers=headers, timeout=5)
        await js.delete_msg(STREAM, letter.sequence)
        count += 1
    return count


async def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chassis.messaging.deadletter")
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("--consumer", help="only the dead letters of this consumer")
    args = parser.parse_args(argv)
    url = os.environ.get("NATS_URL", "nats://localhost:4222")
    try:
        nc = await connect(url, "comanda-deadletter")
    except NatsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return await _act(nc, args.action, args.consumer)
    except NatsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await nc.close()


async def _act(nc: NATS, action: str, consumer: str | None) -> int:
    if action == "list":
        letters = await list_dead_letters(nc, consumer)
        for letter in letters:
            print(
                f"#{letter.sequence} {letter.consumer} {letter.subject} "
                f"[{letter.event_type}] after {letter.deliveries} deliveries: {letter.reason}"
            )
        print(f"{len(letters)} dead letter(s)")
    else:
        print(f"replayed {await replay(nc, consumer)} dead letter(s)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))

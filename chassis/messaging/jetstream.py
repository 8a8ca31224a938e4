"""NATS connection and JetStream set-up: streams and durable consumers, declared idempotently.

Every service declares every stream (whichever starts first creates them) and its own
consumers. A declaration compares the live configuration with the wanted one and updates it
when they differ: nats-py's `pull_subscribe` would silently keep an old durable's config.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError

log = logging.getLogger(__name__)

DEAD_LETTER_PREFIX = "deadletter"


class NatsUnavailable(Exception):
    """NATS cannot be reached (one-line reason)."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str


DEAD_LETTERS = StreamSpec(
    "DEADLETTER",
    (f"{DEAD_LETTER_PREFIX}.>",),
    "Messages a consumer could not process, with the reason in headers",
)


def stream_name(subject: str) -> str:
    """The stream of an event subject: its first token, upper case (`orders.v1.…` -> ORDERS)."""
    return subject.split(".", 1)[0].upper()


def streams(event_subjects: Iterable[str]) -> tuple[StreamSpec, ...]:
    """Every stream of a system whose events have these subject prefixes: one per first token,
    on each version found (`orders.v1.order.created` -> ORDERS on `orders.v1.>`), and the dead
    letters. Every service declares them all (whichever starts first creates them)."""
    found: dict[str, list[str]] = {}
    for subject in event_subjects:
        version = ".".join(subject.split(".")[:2]) + ".>"
        versions = found.setdefault(stream_name(subject), [])
        if version not in versions:
            versions.append(version)
    return (
        *(
            StreamSpec(name, tuple(subjects), f"Events published under {', '.join(subjects)}")
            for name, subjects in found.items()
        ),
        DEAD_LETTERS,
    )


@dataclass(frozen=True)
class StreamSettings:
    replicas: int = 1
    max_age_seconds: float = 7 * 24 * 3600
    duplicate_window_seconds: float = 120


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer; several replicas of a service share it."""

    stream: str
    durable: str
    filter_subjects: tuple[str, ...]
    # Failed attempts (the handler raised) before a message is dead-lettered; outages,
    # crashes and lock conflicts do not count.
    max_deliver: int = 5
    ack_wait_seconds: float = 30
    # Delays before trying a failed message again; the last repeats.
    retry_delays: tuple[float, ...] = field(default=(0.5, 2, 5, 15))
    max_ack_pending: int = 2000
    # JetStream's own limit, a backstop: a message delivered this often without ever being
    # acked or terminated (the process died on it every time) is dead-lettered, unapplied, on
    # its last delivery (and from the max-deliveries advisory, should nobody fetch it then).
    # Crashes and restarts of healthy processes stay far below it.
    unanswered_deliveries: int = 50

    def config(self) -> js_api.ConsumerConfig:
        return js_api.ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            description=f"{self.durable} on {', '.join(self.filter_subjects)}",
            deliver_policy=js_api.DeliverPolicy.ALL,
            ack_policy=js_api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            max_deliver=self.unanswered_deliveries,
            max_ack_pending=self.max_ack_pending,
            filter_subjects=list(self.filter_subjects),
        )


async def connect(url: str, name: str, initial_attempts: int = 3) -> NATS:
    """Connect (and keep reconnecting forever once connected)."""

    connected = False
    clients: list[NATS] = []

    async def on_error(exc: Exception) -> None:
        if connected:  # start-up failures are reported once, below
            log.warning("nats: %s", exc)

    async def on_disconnect() -> None:
        client = clients[0] if clients else None
        shutting_down = client is None or client.is_draining or client.is_closed
        if not shutting_down:  # a drain or close is our own doing
            log.warning("nats: disconnected")

    async def on_reconnect() -> None:
        log.info("nats: reconnected")

    try:
        nc = await nats.connect(
            servers=url.split(","),
            name=name,
            connect_timeout=3,
            allow_reconnect=True,
            max_reconnect_attempts=initial_attempts,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, nats.errors.NoServersError):
            reason = f"no server answered after {initial_attempts} attempts"
        raise NatsUnavailable(f"cannot connect to NATS at {url}: {reason}") from None
    # Start-up gives up after a few attempts (so a wrong URL is reported at once); once
    # connected, keep reconnecting for as long as it takes. nats-py reads this option on
    # every reconnection attempt.
    nc.options["max_reconnect_attempts"] = -1
    connected = True
    clients.append(nc)
    return nc


def _stream_config(spec: StreamSpec, settings: StreamSettings) -> js_api.StreamConfig:
    return js_api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=js_api.RetentionPolicy.LIMITS,
        storage=js_api.StorageType.FILE,
        max_age=settings.max_age_seconds,
        duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.replicas,
    )


def _stream_differs(live: js_api.StreamConfig, wanted: js_api.StreamConfig) -> bool:
    return (
        sorted(live.subjects or []) != sorted(wanted.subjects or [])
        or live.max_age != wanted.max_age
        or live.duplicate_window != wanted.duplicate_window
        or (live.num_replicas or 1) != (wanted.num_replicas or 1)
        or live.description != wanted.description
    )


async def ensure_streams(
    js: JetStreamContext, settings: StreamSettings, specs: Sequence[StreamSpec]
) -> list[str]:
    """Create or update every stream; returns what was done, for logs and tests."""
    actions = []
    for spec in specs:
        wanted = _stream_config(spec, settings)
        for _attempt in range(3):
            try:
                info = await js.stream_info(spec.name)
            except NotFoundError:
                try:
                    await js.add_stream(wanted)
                    actions.append(f"created stream {spec.name}")
                    break
                except BadRequestError:
                    continue  # another replica created it meanwhile: compare again
            else:
                if _stream_differs(info.config, wanted):
                    await js.update_stream(wanted)
                    actions.append(f"updated stream {spec.name}")
                break
    return actions


def _consumer_differs(live: js_api.ConsumerConfig, wanted: js_api.ConsumerConfig) -> bool:
    live_filters = sorted(
        live.filter_subjects or ([live.filter_subject] if live.filter_subject else [])
    )
    return (
        live_filters != sorted(wanted.filter_subjects or [])
        or live.max_deliver != wanted.max_deliver
        or live.ack_wait != wanted.ack_wait
        or live.max_ack_pending != wanted.max_ack_pending
        or live.description != wanted.description
    )


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> str:
    """Create the durable consumer, or update it when its live config differs."""
    wanted = spec.config()
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, wanted)
        return f"created consumer {spec.stream}/{spec.durable}"
    if not _consumer_differs(info.config, wanted):
        return ""
    # CONSUMER.CREATE on an existing consumer updates its mutable settings (server >= 2.10).
    await js.add_consumer(spec.stream, wanted)
    return f"updated consumer {spec.stream}/{spec.durable}"

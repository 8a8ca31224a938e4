"""Runs a service's processes: configuration, database, NATS, graceful shutdown, and either

- the server (`python -m <service>`): the gRPC API, nothing else. A commit that wrote outbox
  rows nudges the workers' relays over core NATS (`chassis.messaging.relay.RelayWake`);
- or a worker (`python -m <service> worker`): the saga's work — JetStream set-up, the outbox
  relay, the event consumer, the sweepers and other periodic tasks — with only the gRPC health
  and reflection services on its port (for probes).

Each scales on its own: checkout and reads do not share an interpreter lock with the saga, and
any number of servers and workers of a service can run at once (the relay skips rows another
holds; the consumer is one durable consumer shared by every worker; the inbox makes redelivery
harmless).

    python -m <service>                 serve the API (default; also `serve`)
    python -m <service> worker          run the saga work
    python -m <service> migrate [REV]   apply migrations (default: head)
    python -m <service> downgrade REV   revert migrations
    python -m <service> config          print the settings as this process would use them

A missing database, NATS or port ends the process with exit code 1 and one line on stderr;
bad configuration with exit code 2, and so does production (COMANDA_ENV=production, the
default) with a missing or development secret.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import uvloop
from nats.aio.client import Client as NATS
from sqlalchemy.engine import Engine

from chassis import config as cfg
from chassis import db, interceptors, logs, metrics, migrations, tokens
from chassis.config import setting
from chassis.grpc_server import GrpcServer, Registration
from chassis.messagebus import MessageBus
from chassis.messaging import housekeeping, jetstream
from chassis.messaging.codec import EventCodec
from chassis.messaging.consumer import EventConsumer, subscription
from chassis.messaging.relay import OutboxRelay, RelayWake
from chassis.periodic import Periodic
from chassis.ports import PortUnavailable, bind, check_port

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    """Settings every gRPC service has; `{SERVICE}` is ORDERS or PAYMENT."""

    SERVICE = ""

    environment: str = setting(
        "COMANDA_ENV",
        cfg.PRODUCTION,
        "development or production; production refuses to start with a missing or development "
        "secret, or with the fake checkout on",
        cfg.environment,
    )
    database_url: str = setting(
        "{SERVICE}_DATABASE_URL",
        "postgresql+psycopg2://postgres@localhost:5432/{service}",
        "The service's own PostgreSQL database (postgresql:// is read as postgresql+psycopg2://)",
        cfg.postgres_url,
    )
    grpc_host: str = setting("{SERVICE}_GRPC_HOST", "0.0.0.0", "Address the gRPC server binds")
    grpc_port: int = setting("{SERVICE}_GRPC_PORT", 50051, "gRPC port", cfg.port)
    http_host: str = setting(
        "{SERVICE}_HTTP_HOST", "0.0.0.0", "Address the server's HTTP API binds"
    )
    http_port: int = setting(
        "{SERVICE}_HTTP_PORT",
        0,
        "Port of the HTTP API the server also serves: the gateway in-process, this service's "
        "methods called directly and the other's over gRPC (docs/adr/0008); 0 serves none",
        int,
    )
    metrics_host: str = setting(
        "{SERVICE}_METRICS_HOST", "0.0.0.0", "Address the Prometheus /metrics endpoint binds"
    )
    metrics_port: int = setting(
        "{SERVICE}_METRICS_PORT", 0, "Port of the Prometheus /metrics endpoint; 0 disables it", int
    )
    db_pool_size: int = setting(
        "{SERVICE}_DB_POOL_SIZE", 10, "Database connections kept open", cfg.positive_int
    )
    nats_url: str = setting(
        "NATS_URL", "nats://localhost:4222", "NATS server(s), comma-separated", cfg.nats_url
    )
    jetstream_replicas: int = setting(
        "JETSTREAM_REPLICAS",
        1,
        "Replicas of each JetStream stream (3 on a NATS cluster)",
        cfg.positive_int,
    )
    jwt_secret: str = setting(
        "JWT_SECRET",
        tokens.DEV_SECRET,
        "HS256 secret staff tokens are signed with (shared with their issuer); unused when "
        "JWT_JWKS_FILE is set",
        secret=True,
    )
    jwt_jwks_file: str = setting(
        "JWT_JWKS_FILE",
        "",
        "JWKS file with the identity provider's public keys (RS256, ES256); when set, staff "
        "tokens must be signed by one of them",
    )
    jwt_issuer: str = setting("JWT_ISSUER", tokens.DEV_ISSUER, "The `iss` staff tokens must carry")
    jwt_audience: str = setting(
        "JWT_AUDIENCE", tokens.AUDIENCE, "The `aud` staff tokens must carry"
    )
    jwt_leeway: float = setting(
        "JWT_LEEWAY_SECONDS",
        30.0,
        "Clock skew tolerated on a staff token's exp",
        cfg.non_negative_float,
    )
    log_level: str = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting("LOG_FORMAT", "json", "json (one object per line) or text")
    shutdown_grace: float = setting(
        "SHUTDOWN_GRACE_SECONDS",
        10.0,
        "Time in-flight calls get to finish on SIGTERM",
        cfg.non_negative_float,
    )
    relay_sweep: float = setting(
        "RELAY_SWEEP_SECONDS",
        1.0,
        "How often the outbox relay looks for rows besides its wake-ups",
        cfg.positive_float,
    )
    batch_linger: float = setting(
        "BATCH_LINGER_SECONDS",
        0.04,
        "How long the outbox relay, the event consumer and other batched work wait for more "
        "to join a round when work is arriving together (fewer, larger batches: less CPU per "
        "order, at most this much latency per step); 0 never waits",
        cfg.non_negative_float,
    )
    consumer_max_deliver: int = setting(
        "CONSUMER_MAX_DELIVER",
        5,
        "Failed attempts of an event (its handler raised) before it is dead-lettered",
        cfg.positive_int,
    )
    consumer_ack_wait: float = setting(
        "CONSUMER_ACK_WAIT_SECONDS",
        30.0,
        "How long JetStream waits for an ack before redelivering (e.g. after a consumer crashed)",
        cfg.positive_float,
    )
    retention_hours: float = setting(
        "MESSAGE_RETENTION_HOURS",
        168.0,
        "How long published outbox rows and inbox rows are kept",
        cfg.positive_float,
    )

    def token_verifier(self) -> tokens.TokenVerifier:
        """The verifier of staff tokens these settings describe (ValueError if unusable)."""
        if self.jwt_jwks_file:
            return tokens.TokenVerifier.from_jwks_file(
                self.jwt_jwks_file, self.jwt_issuer, self.jwt_audience, self.jwt_leeway
            )
        return tokens.TokenVerifier(
            self.jwt_issuer, self.jwt_audience, secret=self.jwt_secret, leeway=self.jwt_leeway
        )

    def problems(self) -> list[str]:
        """What makes these settings unfit to serve with (chassis.config.check)."""
        found = []
        try:
            self.token_verifier()
        except ValueError as exc:
            found.append(f"JWT_JWKS_FILE: {exc}" if self.jwt_jwks_file else f"JWT_SECRET: {exc}")
        unsafe = self.unsafe_for_production()
        if self.environment == cfg.PRODUCTION and unsafe:
            found.append(
                f"COMANDA_ENV=production: {'; '.join(unsafe)} (development values are for "
                "COMANDA_ENV=development only)"
            )
        return found

    def unsafe_for_production(self) -> list[str]:
        """What only development may run with: development, missing or weak secrets."""
        if self.jwt_jwks_file:
            return []
        problem = cfg.production_secret("JWT_SECRET", self.jwt_secret, tokens.DEV_SECRET)
        return [problem] if problem else []


SERVER = "server"
WORKER = "worker"


class HttpFront(Protocol):
    """The HTTP API a server process serves beside gRPC when `{SERVICE}_HTTP_PORT` is set:
    the gateway, given the server's wrapped method handlers (`gateway.server.IN_PROCESS`)."""

    def settings(self) -> list[tuple[str, str, str]]:
        """The settings it reads, as `chassis.config.effective` lists them; raises
        chassis.config.ConfigError if they are unusable."""

    async def serve(
        self,
        service: str,
        handlers: Mapping[str, Any],
        sock: socket.socket,
        started: asyncio.Event,
        stopping: asyncio.Event,
    ) -> None:
        """Serve on `sock` until `stopping` is set; set `started` once serving."""


@dataclass
class Runtime:
    """What a service's wiring receives: its config, its connections, which process it is
    (SERVER or WORKER), and what a commit that wrote outbox rows calls (any thread)."""

    name: str
    config: Any
    engine: Engine
    nc: NATS
    role: str
    outbox_written: Callable[[], None]


@dataclass
class Wiring:
    """What a service plugs into the chassis."""

    # The server's part: the gRPC API.
    registrations: Sequence[Registration]
    service_names: Sequence[str]
    uow_factory: Callable[[], db.UnitOfWork]
    # The worker's part: the service's message bus and the durable consumer that delivers its
    # events, and the periodic tasks.
    bus: MessageBus[Any] | None = None
    consumer: str = ""
    periodic: Sequence[Periodic] = ()
    # Other work that runs until `stopping` is set (in either process: see `Runtime.role`).
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = ()


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    config_class: type[ServiceConfig]
    versions_dir: Path
    wire: Callable[[Runtime], Wiring]
    # The events of the system: every stream is declared from their subjects.
    codec: EventCodec
    # Messages that name their aggregate in another field than the codec's aggregate field
    # (message full name -> field), for the logging context of each call.
    aggregate_ids: Mapping[str, str] = field(default_factory=dict)
    # Extra one-shot commands (`python -m <service> <name>`): they get the config and
    # return a line to print.
    commands: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)


class StartupError(Exception):
    """A dependency is missing at start-up (one-line reason)."""


async def serve(
    definition: ServiceDefinition,
    config: ServiceConfig,
    ready: asyncio.Event | None = None,
    role: str = SERVER,
    http: HttpFront | None = None,
) -> None:
    """Run the service's server or one of its workers until SIGTERM or SIGINT; a server
    with `{SERVICE}_HTTP_PORT` set also serves `http`."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            config.db_pool_size + 4, thread_name_prefix=definition.name
        )
    )
    check_port(config.grpc_host, config.grpc_port)
    if config.metrics_port:
        check_port(config.metrics_host, config.metrics_port)
    serves_http = role == SERVER and config.http_port != 0
    if serves_http and http is None:
        raise StartupError(
            f"{definition.name.upper()}_HTTP_PORT is set, but this process has no HTTP API"
        )
    http_socket = bind(config.http_host, config.http_port) if serves_http else None
    engine = db.create_engine(config.database_url, pool_size=config.db_pool_size)
    try:
        await asyncio.to_thread(db.check_connection, engine)
        if not await asyncio.to_thread(
            migrations.is_current, definition.name, definition.versions_dir, config.database_url
        ):
            raise StartupError(
                f"the {definition.name} database is not migrated to the newest revision: "
                f"run `python -m {definition.name} migrate`"
            )
        client = f"comanda-{definition.name}" + ("-worker" if role == WORKER else "")
        nc = await jetstream.connect(config.nats_url, client)
    except (db.DatabaseUnavailable, jetstream.NatsUnavailable):
        engine.dispose()
        raise
    stopping = asyncio.Event()
    name = definition.name if role == SERVER else f"{definition.name} worker"
    try:
        work = _Worker(definition, config, engine, nc) if role == WORKER else None
        wake = work.relay.wake if work is not None else RelayWake(nc, definition.name).send
        runtime = Runtime(definition.name, config, engine, nc, role, wake)
        wiring = definition.wire(runtime)
        tasks = await work.start(wiring, stopping) if work is not None else []
        server = GrpcServer(
            definition.name,
            config.grpc_host,
            config.grpc_port,
            wiring.registrations if role == SERVER else (),
            wiring.service_names if role == SERVER else (),
            interceptors.Interceptors(
                definition.name,
                config.token_verifier(),
                definition.codec.aggregate_field,
                definition.aggregate_ids,
            ),
        )
        if http is not None and http_socket is not None:  # before gRPC says SERVING
            tasks.append(await _start_front(http, definition.name, server, http_socket, stopping))
        port = await server.start()
        if http_socket is not None:
            log.info(
                "%s serving HTTP on %s:%d (the gateway, %s in-process)",
                name,
                config.http_host,
                config.http_port,
                definition.name,
                extra={"http_port": config.http_port},
            )
        if config.metrics_port:
            _start_metrics(config.metrics_host, config.metrics_port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        tasks += [asyncio.create_task(run(stopping)) for run in wiring.background]
        log.info(
            "%s listening on %s:%d (gRPC%s)",
            name,
            config.grpc_host,
            port,
            "" if role == SERVER else ": health only",
            extra={"port": port},
        )
        if ready is not None:
            ready.set()
        await stopping.wait()
        log.info("%s shutting down (grace %.1fs)", name, config.shutdown_grace)
        await server.stop(config.shutdown_grace)
        await _finish(tasks, timeout=5)
        if work is not None:
            await work.flush()
        log.info("%s stopped", name)
    finally:
        stopping.set()
        if http_socket is not None:
            http_socket.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 5)
        engine.dispose()


async def _start_front(
    front: HttpFront,
    service: str,
    server: GrpcServer,
    sock: socket.socket,
    stopping: asyncio.Event,
) -> asyncio.Task[None]:
    """Start serving HTTP; returns its task once it takes requests."""
    started = asyncio.Event()
    task = asyncio.create_task(
        front.serve(service, server.handlers, sock, started, stopping), name="HTTP API"
    )
    waiting = asyncio.ensure_future(started.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if not started.is_set():
        waiting.cancel()
        reason = task.exception() if not task.cancelled() else None
        raise StartupError(
            f"the HTTP API did not start: {reason!r}"
            if reason
            else "the HTTP API did not start (see the lines above)"
        )
    return task


class _Worker:
    """The saga's work in a worker process: streams, the relay, the consumer, periodic tasks."""

    def __init__(
        self, definition: ServiceDefinition, config: ServiceConfig, engine: Engine, nc: NATS
    ) -> None:
        self.definition = definition
        self.config = config
        self.engine = engine
        self.nc = nc
        self.relay = OutboxRelay(
            engine,
            nc,
            definition.name,
            sweep_interval=config.relay_sweep,
            linger=config.batch_linger,
        )

    async def start(self, wiring: Wiring, stopping: asyncio.Event) -> list[asyncio.Task[Any]]:
        definition, config, relay = self.definition, self.config, self.relay
        js = self.nc.jetstream()
        settings = jetstream.StreamSettings(replicas=config.jetstream_replicas)
        streams = jetstream.streams(definition.codec.subjects)
        for action in await jetstream.ensure_streams(js, settings, streams):
            log.info("jetstream: %s", action)
        consumers: list[EventConsumer[Any]] = []
        if wiring.bus is not None and wiring.bus.message_types:
            spec = dataclasses.replace(
                subscription(wiring.consumer, definition.codec, wiring.bus.message_types),
                max_deliver=config.consumer_max_deliver,
                ack_wait_seconds=config.consumer_ack_wait,
            )
            action = await jetstream.ensure_consumer(js, spec)
            if action:
                log.info("jetstream: %s", action)
            consumers.append(
                EventConsumer(
                    self.nc,
                    spec,
                    wiring.bus,
                    wiring.uow_factory,
                    definition.codec,
                    definition.name,
                    linger=config.batch_linger,
                )
            )
        retention = timedelta(hours=config.retention_hours)

        def purge() -> int:
            return sum(housekeeping.purge(self.engine, retention))

        def measure_backlog() -> int:
            count, age = relay.backlog()
            metrics.OUTBOX_BACKLOG.labels(definition.name).set(count)
            metrics.OUTBOX_OLDEST_AGE.labels(definition.name).set(age)
            return 0

        periodic = [
            relay.task,
            Periodic(
                "housekeeping",
                600,
                purge,
                report="housekeeping: purged %d published outbox and old inbox rows",
                jitter=0.2,
                wait_first=True,
            ),
            Periodic("outbox backlog metrics", 5, measure_backlog),
            *wiring.periodic,
        ]
        return [
            asyncio.create_task(relay.listen(stopping), name="relay wake-ups"),
            *(asyncio.create_task(p.run(stopping), name=p.name) for p in periodic),
            *(asyncio.create_task(c.run(stopping), name=c.spec.durable) for c in consumers),
        ]

    async def flush(self) -> None:
        """Publish what the outbox still holds before the process ends."""
        with contextlib.suppress(Exception):
            while await asyncio.wait_for(self.relay.publish_once(), 5) >= self.relay.batch_size:
                pass


async def _finish(tasks: list[asyncio.Task[Any]], timeout: float) -> None:
    if not tasks:  # a process with no background work (an API process in production)
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed: %r", task.get_name(), task.exception())


def _start_metrics(host: str, port: int) -> None:
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise PortUnavailable(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None


def main(
    definition: ServiceDefinition,
    argv: Sequence[str] | None = None,
    http: HttpFront | None = None,
) -> int:
    """`http`: what a server serves on `{SERVICE}_HTTP_PORT` when that is set."""
    parser = argparse.ArgumentParser(prog=f"python -m {definition.name}")
    commands = ["serve", WORKER, "migrate", "downgrade", "config", *definition.commands]
    parser.add_argument("command", nargs="?", default="serve", choices=commands)
    parser.add_argument("revision", nargs="?", default=None)
    args = parser.parse_args(argv)
    try:
        # Only serving needs the secrets: migrations and the like run with what they need.
        config = cfg.load(definition.config_class, whole=False)
        rows = cfg.effective(config)
        if args.command in ("serve", "config") and config.http_port and http is not None:
            named = {row[0] for row in rows}  # the HTTP API's settings, those not shared
            rows += [row for row in http.settings() if row[0] not in named]
        if args.command == "config":
            for env, value, doc in rows:
                print(f"{env:34} {value:48} {doc}")
        if args.command in ("serve", WORKER, "config"):
            cfg.check(config)
    except cfg.ConfigError as exc:
        print(f"{definition.name}: {exc}", file=sys.stderr)
        return 2
    if args.command == "config":
        return 0
    logs.configure(
        definition.name, config.log_level, config.log_format, definition.codec.aggregate_field
    )
    try:
        if args.command in definition.commands:
            print(f"{definition.name}: {definition.commands[args.command](config)}")
        elif args.command == "migrate":
            migrations.upgrade(
                definition.name,
                definition.versions_dir,
                config.database_url,
                args.revision or "head",
            )
            print(f"{definition.name}: database migrated to {args.revision or 'head'}")
        elif args.command == "downgrade":
            if not args.revision:
                parser.error("downgrade needs a revision (e.g. base)")
            migrations.downgrade(
                definition.name, definition.versions_dir, config.database_url, args.revision
            )
            print(f"{definition.name}: database downgraded to {args.revision}")
        else:
            role = WORKER if args.command == WORKER else SERVER
            uvloop.run(serve(definition, config, role=role, http=http))
    except (
        db.DatabaseUnavailable,
        jetstream.NatsUnavailable,
        PortUnavailable,
        StartupError,
    ) as exc:
        print(f"{definition.name}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. a migration against an unreachable database
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        print(
            f"{definition.name}: error: {type(exc).__name__}: {reason[0] if reason else ''}",
            file=sys.stderr,
        )
        return 1
    return 0

"""Throwaway PostgreSQL and NATS for the tests, or the ones named in the environment.

- TEST_POSTGRES_URL: a server URL (postgresql://user@host:port/postgres) on which the tests
  may create and drop databases. Unset: an embedded PostgreSQL in a temporary directory.
- TEST_NATS_URL: a NATS server with JetStream; the tests delete the Comanda streams on it
  before each stack. Unset: each stack gets its own embedded nats-server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg2
import sqlalchemy as sa

from chassis import migrations
from devstack.servers import Nats, Postgres, free_port


def make_tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, durable: bool = False) -> None:
        self.external = os.environ.get("TEST_POSTGRES_URL")
        self.durable = durable  # fsync on (benchmarks); off for throwaway test data
        self.embedded: Postgres | None = None
        self.tmp: Path | None = None

    def start(self) -> None:
        if self.external:
            return
        self.tmp = make_tmpdir("comanda-test-pg-")
        self.embedded = Postgres(self.tmp / "data", free_port(), fast=not self.durable)
        self.embedded.start()

    def stop(self) -> None:
        if self.embedded:
            self.embedded.remove()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, database: str) -> str:
        if self.embedded:
            return self.embedded.url(database)
        assert self.external
        url = sa.engine.make_url(self.external).set(
            drivername="postgresql+psycopg2", database=database
        )
        return url.render_as_string(hide_password=False)

    def _admin(self) -> psycopg2.extensions.connection:
        conn = connect(self.url("postgres"))
        conn.autocommit = True
        return conn

    def create_database(self, prefix: str, template: str | None = None) -> tuple[str, str]:
        """A new database (copied from `template` if given); returns (name, URL)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
                )
        finally:
            conn.close()
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()

    def migrated_template(self, service: str, versions_dir: Path) -> str:
        """A database migrated to head, to copy for each test that needs a clean one."""
        name, url = self.create_database(f"{service}_template")
        migrations.upgrade(service, versions_dir, url)
        return name

    def kill(self) -> None:
        assert self.embedded, "killing needs the embedded PostgreSQL"
        self.embedded.kill()

    def restart(self) -> None:
        assert self.embedded, "restarting needs the embedded PostgreSQL"
        self.embedded.start()


class NatsServer:
    """A NATS JetStream server for one stack of services."""

    def __init__(self) -> None:
        self.external = os.environ.get("TEST_NATS_URL")
        self.tmp = None if self.external else make_tmpdir("comanda-test-nats-")
        self.embedded = None if self.external else Nats(self.tmp / "store", free_port())  # type: ignore[operator]

    @property
    def url(self) -> str:
        return self.external or self.embedded.url  # type: ignore[union-attr]

    def start(self) -> None:
        if self.embedded:
            self.embedded.start()
        else:
            _delete_streams(self.url)

    def stop(self) -> None:
        if self.embedded:
            self.embedded.stop()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def kill(self) -> None:
        assert self.embedded, "killing needs the embedded NATS"
        self.embedded.kill()

    def restart(self) -> None:
        assert self.embedded, "restarting needs the embedded NATS"
        self.embedded.start()


def _delete_streams(url: str) -> None:
    import asyncio

    import nats

    from chassis.messaging.jetstream import streams
    from orders.service_layer.unit_of_work import CODEC

    async def run() -> None:
        nc = await nats.connect(url)
        try:
            for spec in streams(CODEC.subjects):
                with contextlib.suppress(Exception):  # absent
                    await nc.jetstream().delete_stream(spec.name)
        finally:
            await nc.close()

    asyncio.run(run())


def connect(url: str) -> psycopg2.extensions.connection:
    """A psycopg2 connection to the database a service's SQLAlchemy URL names (its host and
    port may sit in the query: the embedded server's Unix socket)."""
    libpq = sa.engine.make_url(url).set(drivername="postgresql")
    return psycopg2.connect(libpq.render_as_string(hide_password=False))

"""Hot statements are prepared once per connection and then run by name, with their
parameters (arrays, casts, repeated names) as the plain statement would take them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from chassis.repository import Prepared

STATEMENT = Prepared(
    "SELECT %(ids)s::uuid[] AS ids, %(n)s::int + %(n)s AS twice, 'a%%' AS percent, "
    "cardinality(%(empty)s::text[]) AS none"
)


def test_a_statement_is_prepared_once_per_connection_and_gives_the_plain_result(
    orders_engine: sa.Engine,
) -> None:
    ids = ["6b1d4a10-0000-4000-8000-000000000001", "6b1d4a10-0000-4000-8000-000000000002"]
    with orders_engine.connect() as conn:
        for n in (1, 2):
            (row,) = STATEMENT.run(conn, {"ids": ids, "n": n, "empty": []})
            assert ([str(i) for i in row.ids], row.twice, row.percent, row.none) == (
                ids,
                2 * n,
                "a%",
                0,
            )
        prepared = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = %(name)s",
            {"name": STATEMENT.name},
        ).scalar()
        assert prepared == 1, "prepared once, run twice"
    with orders_engine.connect() as conn:  # the pool's connection: still prepared there
        assert STATEMENT.first(conn, {"ids": [], "n": 0, "empty": []}).twice == 0


def test_a_statement_runs_in_the_connections_transaction(orders_engine: sa.Engine) -> None:
    """The driver's cursor runs inside SQLAlchemy's transaction: begun for it if none was, so a
    commit keeps what it wrote and a rollback drops it."""
    with orders_engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE prepared_t (id int PRIMARY KEY)")
        conn.commit()
    insert = Prepared("INSERT INTO prepared_t VALUES (%(id)s) RETURNING id")
    count = Prepared("SELECT count(*) AS n FROM prepared_t")
    with orders_engine.connect() as conn:
        assert insert.run(conn, {"id": 1}) == [(1,)]
        assert conn.in_transaction(), "the statement began the connection's transaction"
        conn.rollback()
        assert count.first(conn).n == 0, "rolled back with the transaction"
        insert.run(conn, {"id": 2})
        conn.commit()
    with orders_engine.connect() as conn:
        assert count.first(conn).n == 1, "committed with the transaction"


def test_a_driver_error_is_sqlalchemys_and_a_broken_connection_renews_the_pool(
    orders_engine: sa.Engine,
) -> None:
    with orders_engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE prepared_u (id int PRIMARY KEY)")
        conn.commit()
    insert = Prepared("INSERT INTO prepared_u VALUES (%(id)s)")
    with orders_engine.connect() as conn:
        insert.run(conn, {"id": 1})
        with pytest.raises(sa.exc.IntegrityError, match="prepared_u_pkey"):
            insert.run(conn, {"id": 1})
        conn.rollback()
    with orders_engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with orders_engine.connect() as other:
            other.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})
        with pytest.raises(sa.exc.OperationalError) as raised:
            insert.run(conn, {"id": 2})
        assert raised.value.connection_invalidated, "the broken connection is invalidated"
    with orders_engine.connect() as conn:  # a fresh connection, where it is prepared anew
        insert.run(conn, {"id": 2})
        conn.commit()
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid

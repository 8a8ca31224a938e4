"""Hot statements are prepared once per connection and then run by name, with their
parameters (arrays, casts, repeated names) as the plain statement would take them."""

from __future__ import annotations

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
            row = STATEMENT.run(conn, {"ids": ids, "n": n, "empty": []}).one()
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
        assert STATEMENT.run(conn, {"ids": [], "n": 0, "empty": []}).one().twice == 0

"""Alembic environment shared by every service (see chassis.migrations)."""

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.attributes["database_url"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        version_table=config.attributes["version_table"],
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()

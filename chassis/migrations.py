"""Alembic migrations: one history per service, one shared environment.

Each service keeps its revisions in `<service>/migrations/`; the environment script (how to
connect and run) is `chassis/alembic/env.py`, written once. Each history has its own version
table in its own database.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

_ENV_DIR = Path(__file__).parent / "alembic"


def alembic_config(service: str, versions_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_ENV_DIR))
    config.set_main_option("version_locations", str(versions_dir))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["version_table"] = f"alembic_version_{service}"
    return config


def upgrade(service: str, versions_dir: Path, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, versions_dir, database_url), revision)


def downgrade(service: str, versions_dir: Path, database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(service, versions_dir, database_url), revision)


def is_current(service: str, versions_dir: Path, database_url: str) -> bool:
    """Whether the database is migrated to the newest revision of the service's history."""
    config = alembic_config(service, versions_dir, database_url)
    heads = set(ScriptDirectory.from_config(config).get_heads())
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": f"alembic_version_{service}"}
            )
            return set(context.get_current_heads()) == heads
    finally:
        engine.dispose()

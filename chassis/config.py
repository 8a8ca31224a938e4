"""Configuration from environment variables, with documented defaults.

Each process declares a frozen dataclass whose fields are made with `setting(...)`. `load`
reads the environment, parses every value, then asks the configuration itself for what is
wrong with the whole (`problems()`, e.g. a development secret in production), and reports
every bad one at once, as a `ConfigError` whose message fits on one line. `effective` lists
the values a process will use, with secrets masked, for `python -m <process> config`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or malformed."""


def setting(
    env: str, default: Any, doc: str, parse: Callable[[str], Any] = str, secret: bool = False
) -> Any:
    """A configuration field read from the environment variable `env`; a `secret` one is never
    shown."""
    return dataclasses.field(
        default=default, metadata={"env": env, "doc": doc, "parse": parse, "secret": secret}
    )


DEVELOPMENT, PRODUCTION = "development", "production"


def environment(value: str) -> str:
    """COMANDA_ENV: development or production."""
    if value not in (DEVELOPMENT, PRODUCTION):
        raise ValueError(f"expected {DEVELOPMENT} or {PRODUCTION}")
    return value


def production_secret(env: str, value: str, development_default: str) -> str | None:
    """What is wrong with a secret in production (None: nothing): missing, the development
    default, or too short to resist guessing."""
    if not value:
        return f"{env} is missing"
    if value == development_default:
        return f"{env} is the development default"
    if len(value) < 32:
        return f"{env} is shorter than 32 characters"
    return None


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError(f"{value!r} is not a positive integer")
    return number


def port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError(f"{value!r} is not a TCP port (1..65535)")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(f"{value!r} is not a positive number")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    return number


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def postgres_url(value: str) -> str:
    """A SQLAlchemy URL for PostgreSQL through psycopg2 (`postgresql://` is rewritten)."""
    if value.startswith("postgres://"):
        value = "postgresql://" + value.removeprefix("postgres://")
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg2://" + value.removeprefix("postgresql://")
    if not value.startswith("postgresql+psycopg2://"):
        raise ValueError("must start with postgresql:// or postgresql+psycopg2://")
    return value


def nats_url(value: str) -> str:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls or not all(u.startswith(("nats://", "tls://")) for u in urls):
        raise ValueError("must be nats://host:port (several separated by commas)")
    return ",".join(urls)


def _service(cls: type[Any]) -> str:
    return str(getattr(cls, "SERVICE", ""))


def env_name(cls: type[Any], f: dataclasses.Field[Any]) -> str:
    """The variable of a field: `{SERVICE}` in its name becomes the class's SERVICE."""
    return str(f.metadata["env"]).replace("{SERVICE}", _service(cls).upper())


def default_of(cls: type[Any], f: dataclasses.Field[Any]) -> Any:
    """The default of a field: `{service}` in a string default becomes the class's SERVICE."""
    default = f.default
    return default.replace("{service}", _service(cls)) if isinstance(default, str) else default


def load(cls: type[T], environ: Mapping[str, str] | None = None, whole: bool = True) -> T:
    """Build `cls` from the environment; raises ConfigError naming every bad variable, and
    (with `whole`) every problem of the whole, such as a development secret in production."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        env = env_name(cls, f)
        raw = environ.get(env)
        if raw is None or raw == "":
            values[f.name] = default_of(cls, f)
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            problems.append(f"{env}={raw!r}: {exc}")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    loaded = cls(**values)
    if whole:
        check(loaded)
    return loaded


def check(config: Any) -> None:
    """Raise ConfigError listing what the configuration's `problems()` finds, if anything."""
    problems = config.problems() if hasattr(config, "problems") else []
    if problems:
        raise ConfigError("refusing to start: " + "; ".join(problems))


def describe(cls: type[Any]) -> list[tuple[str, str, str]]:
    """(variable, default, description) of every setting, for docs and `--help`."""
    return [
        (env_name(cls, f), str(default_of(cls, f)), str(f.metadata["doc"]))
        for f in dataclasses.fields(cls)
    ]


def effective(config: Any) -> list[tuple[str, str, str]]:
    """(variable, value in use, description) of every setting of a loaded configuration;
    secrets show only whether they are set, URLs lose their password."""
    rows = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("secret"):
            shown = "(empty)" if not value else "*** (default)" if value == f.default else "***"
        elif isinstance(value, tuple):
            shown = ",".join(str(v) for v in value)
        else:
            shown = redact_url(str(value))
        rows.append((env_name(type(config), f), shown, str(f.metadata["doc"])))
    return rows


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"

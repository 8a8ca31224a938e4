"""Structured logging: one JSON object per line, with the request id, the id of the
aggregate being worked on (under the name the service gives it, e.g. `order_id`) and, for a
staff call, the acting staff member (`actor`, their token's `sub`) in context.

The ids live in context variables, so they follow a request through `await` and into worker
threads (`asyncio.to_thread` copies the context). CPF and e-mail are never logged: log
records carry ids only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
aggregate_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("aggregate_id", default="")
# The staff member a call acts for (their token's `sub`), set by the auth interceptor.
actor_var: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="")

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, aggregate_key: str = "aggregate_id") -> None:
        super().__init__()
        self.service = service
        self.aggregate_key = aggregate_key

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        aggregate_id = aggregate_id_var.get()
        if aggregate_id:
            entry[self.aggregate_key] = aggregate_id
        actor = actor_var.get()
        if actor:
            entry["actor"] = actor
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str, aggregate_key: str = "aggregate_id") -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        self.aggregate_key = aggregate_key

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = [f"request_id={request_id_var.get()}"] if request_id_var.get() else []
        if aggregate_id_var.get():
            extras.append(f"{self.aggregate_key}={aggregate_id_var.get()}")
        if actor_var.get():
            extras.append(f"actor={actor_var.get()}")
        return f"{text} [{' '.join(extras)}]" if extras else text


def configure(
    service: str, level: str = "INFO", fmt: str = "json", aggregate_key: str = "aggregate_id"
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    handler.setFormatter(formatter(service, aggregate_key))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "sqlalchemy", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

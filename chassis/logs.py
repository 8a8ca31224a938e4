"""Structured logging: one JSON object per line, with the request id, the id of the
aggregate being worked on (under the name the service gives it, e.g. `order_id`) and, for a
staff call, the acting staff member (`actor`, their token's `sub`) in context.

Lines reach stderr in batches (`BatchedStream`): at most a fifth of a second late, at once for
WARNING and above and at exit; a process killed with SIGKILL loses at most that fifth of a
second of INFO lines. One write per batch instead of one per line saves the system call and the
interpreter-lock handoff it causes in a busy process (the access log writes a line per call).

The ids live in context variables, so they follow a request through `await` and into worker
threads (`asyncio.to_thread` copies the context). CPF and e-mail are never logged: log
records carry ids only.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

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

    _second = -1
    _stamp = ""

    def _time(self, created: float, msecs: float) -> str:
        """ISO 8601 UTC with milliseconds; the part to the second is formatted once a second."""
        second = int(created)
        if second != self._second:
            self._second, self._stamp = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
            )
        return f"{self._stamp}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created, record.msecs),
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
        for key in vars(record).keys() - _RESERVED:  # what the call passed as `extra`
            if not key.startswith("_"):
                entry[key] = getattr(record, key)
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


class BatchedStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes what it was given at most `interval` seconds later, in one
    write: at once for WARNING and above, and when logging shuts down (at exit)."""

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self.interval = interval
        threading.Thread(target=self._flush_now_and_then, name="log flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            lines, self._lines = self._lines, []
            if lines and self.stream:
                self.stream.write("".join(lines))
                self.stream.flush()
        finally:
            self.release()

    def _flush_now_and_then(self) -> None:
        while True:
            time.sleep(self.interval)
            if self._lines:
                self.flush()


def configure(
    service: str, level: str = "INFO", fmt: str = "json", aggregate_key: str = "aggregate_id"
) -> None:
    # A log call costs less without what no formatter here uses: the caller's file and line
    # (a stack walk per record), thread, process and task names (the logging HOWTO's
    # "Optimization"); the access log writes a line per call.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedStream(sys.stderr)
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    handler.setFormatter(formatter(service, aggregate_key))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "sqlalchemy", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

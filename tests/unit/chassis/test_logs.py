"""Log lines reach the stream in batches, warnings at once; a line per call written directly is
the line logging would write."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from chassis import logs
from chassis.logs import BatchedStream


def test_log_lines_are_written_in_batches_but_warnings_at_once() -> None:
    """The handler holds INFO lines for a fifth of a second (one write per batch) and writes a
    WARNING, with everything before it, at once."""
    stream = io.StringIO()
    handler = BatchedStream(stream, interval=60)  # its timer does not fire during the test
    logger = logging.getLogger("test.batched")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("first")
        logger.info("second")
        assert stream.getvalue() == "", "INFO lines wait for the next flush"
        logger.warning("third")
        assert stream.getvalue().splitlines() == ["first", "second", "third"]
        logger.info("fourth")
        handler.flush()  # as logging's shutdown does at exit
        assert stream.getvalue().splitlines()[-1] == "fourth"
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def configured(stream: io.StringIO) -> Iterator[BatchedStream]:
    """`logs.configure` writing to `stream`; the test process's logging restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.stderr)
    sys.stderr = stream
    try:
        logs.configure("svc", aggregate_key="order_id")
        handler = root.handlers[0]
        assert isinstance(handler, BatchedStream)
        yield handler
    finally:
        sys.stderr = saved[2]
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logs._json_lines = None


def test_a_line_per_call_is_the_line_logging_writes() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.access")
    fields = {"rpc": "GetOrder", "code": "OK", "duration_ms": 1.25}
    with configured(stream) as handler:
        logs.request_id_var.set("r-1")
        logs.aggregate_id_var.set("o-1")
        logs.actor_var.set("")
        logger.info("GetOrder OK 1.2ms", extra=fields)
        logs.info_line(logger, "GetOrder OK 1.2ms", fields)
        handler.flush()
    through_logging, direct = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (
        len(through_logging.pop("time"))
        == len(direct.pop("time"))
        == len("2026-11-30T02:00:00.123Z")
    )
    assert (
        direct
        == through_logging
        == {
            "level": "info",
            "service": "svc",
            "logger": "test.access",
            "message": "GetOrder OK 1.2ms",
            "request_id": "r-1",
            "order_id": "o-1",
            "rpc": "GetOrder",
            "code": "OK",
            "duration_ms": 1.25,
        }
    )


def test_a_line_per_call_goes_through_logging_when_something_else_listens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()
    with configured(stream) as handler:
        logging.getLogger().addHandler(caplog.handler)  # a test's capture: another handler
        logs.info_line(logging.getLogger("test.access"), "GetOrder OK 1.2ms", {"code": "OK"})
        handler.flush()
    assert json.loads(stream.getvalue())["code"] == "OK", "the JSON line is written too"
    assert [(r.getMessage(), r.code) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("GetOrder OK 1.2ms", "OK")
    ]

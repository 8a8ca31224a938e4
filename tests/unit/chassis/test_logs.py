"""Log lines reach the stream in batches, warnings at once."""

from __future__ import annotations

import io
import logging

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

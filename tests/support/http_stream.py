"""Reading a gateway stream (NDJSON or Server-Sent Events) in a thread, keeping every message."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.waiting import wait_for


class HttpStream:
    def __init__(self, url: str, sse: bool = False, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.sse = sse
        self.headers = {**(headers or {}), "Accept": "text/event-stream" if sse else "*/*"}
        self.messages: list[dict[str, Any]] = []
        self.raw = bytearray()
        self.status = 0
        self.content_type = ""
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._response: httpx.Response | None = None
        self._closing = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=None) as response:
                self._response = response
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                buffer = b""
                for chunk in response.iter_bytes():
                    self.raw.extend(chunk)
                    buffer += chunk
                    separator = b"\n\n" if self.sse else b"\n"
                    while separator in buffer:
                        frame, buffer = buffer.split(separator, 1)
                        if frame.strip():
                            self.messages.append(self._parse(frame))
        except Exception as exc:
            if not self._closing:
                self.error = exc
        finally:
            self.ended.set()

    def _parse(self, frame: bytes) -> dict[str, Any]:
        if not self.sse:
            parsed: dict[str, Any] = json.loads(frame)
            return parsed
        fields = dict(line.split(": ", 1) for line in frame.decode().splitlines())
        if fields.get("event") == "error":
            return {"error": json.loads(fields["data"])}
        return {"result": json.loads(fields["data"])}

    def results(self) -> list[dict[str, Any]]:
        return [m["result"] for m in self.messages if "result" in m]

    def wait(
        self, check: Callable[[list[dict[str, Any]]], Any], what: str, timeout: float = 15
    ) -> Any:
        """Wait until `check(results so far)` is truthy; returns it."""

        def probe() -> Any:
            if self.error is not None:
                raise AssertionError(f"the stream {self.url} failed: {self.error!r}")
            return check(self.results())

        return wait_for(probe, timeout=timeout, what=f"{what} on {self.url}")

    def close(self) -> None:
        """Leave, as a browser closing the page would: the connection is shut at once (a
        close() from another thread would wait for the blocked read to return)."""
        self._closing = True
        if self._response is not None:
            network = self._response.extensions.get("network_stream")
            sock = network.get_extra_info("socket") if network is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        assert self.ended.wait(5), f"the stream {self.url} did not end after the client left"

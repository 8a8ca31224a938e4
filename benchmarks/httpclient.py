"""A minimal HTTP/1.1 keep-alive client on asyncio streams: cheap enough that the load
generator does not eat the CPU the system under test needs (it shares the machine)."""

from __future__ import annotations

import asyncio


class Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class Pool:
    """`size` keep-alive connections, each used by one request at a time."""

    def __init__(self, connections: list[Connection]) -> None:
        self.connections = connections
        self.free = list(connections)

    @classmethod
    async def open(cls, host: str, port: int, size: int) -> Pool:
        return cls([await Connection.open(host, port) for _ in range(size)])

    @classmethod
    async def spread(cls, ports: list[int], size: int, host: str = "127.0.0.1") -> Pool:
        """`size` connections dealt in turn over several servers' ports, as a load balancer
        in front of them would."""
        return cls([await Connection.open(host, ports[i % len(ports)]) for i in range(size)])

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = self.free.pop()
        try:
            return await conn.request(method, path, body, headers)
        finally:
            self.free.append(conn)

    async def close(self) -> None:
        for conn in self.connections:
            await conn.close()

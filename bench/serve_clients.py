"""The serving benchmark's two clients of the Datasette app, both as lean as a client can be.

The benchmark measures what the server adds to a library call, so the client's own cost per
request should be small against it. Datasette's test client (`ds.client.get`) builds a new
httpx.AsyncClient for every request, and an httpx.AsyncClient spends time of its own per
request too. Neither is time a server spends, so the timed variants use these instead and
bench/serve.py prints what the others would add, measured in the same run.

  asgi_caller(app)   calls the ASGI app `mlopsmortem serve` runs (middleware and all) directly
  KeepAliveHTTP      HTTP/1.1 GETs over persistent loopback connections, one per concurrent
                     caller, as a load generator (wrk, hey) holds them
  BlockingHTTP       the same over one connection with blocking socket calls, for requests one
                     after another: no event loop between the socket and the timer
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from tests.support.asgi_calls import asgi_request


class Reply(NamedTuple):
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def asgi_caller(app: Any, host: str = "localhost") -> Callable[[str], Awaitable[Reply]]:
    """get(path_and_query) -> Reply, through the ASGI app without any client library."""

    async def get(url: str) -> Reply:
        status, _, body = await asgi_request(app, url, host=host)
        return Reply(status, body)

    return get


class KeepAliveHTTP:
    """GET requests over persistent HTTP/1.1 connections to host:port.

    A caller takes an idle connection (or opens one), sends, reads the reply by its
    Content-Length (or its chunks) and puts the connection back: with N concurrent callers
    there are at most N connections, each reused. A connection idle for longer than
    IDLE_SECONDS is closed instead of reused: uvicorn closes its side after 5 s."""

    IDLE_SECONDS = 4.0
    TIMEOUT_SECONDS = 120.0

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.request_head = f"Host: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer, last_used = self.idle.pop()
            if time.monotonic() - last_used < self.IDLE_SECONDS:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def get(self, url: str) -> Reply:
        reader, writer = await self._connection()
        try:
            async with asyncio.timeout(self.TIMEOUT_SECONDS):
                writer.write(f"GET {url} HTTP/1.1\r\n".encode("ascii") + self.request_head)
                status, headers, body = await self._reply(reader, url)
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return Reply(status, body)

    async def _reply(
        self, reader: asyncio.StreamReader, url: str
    ) -> tuple[int, dict[str, str], bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunks(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            raise RuntimeError(f"{url}: a reply with neither Content-Length nor chunks")
        return status, headers, body

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields, up to the empty line
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def aclose(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


class BlockingHTTP:
    """GET requests one after another over one persistent HTTP/1.1 connection, with blocking
    socket calls (the sequential measurements need no event loop). Replies are read by their
    Content-Length or their chunks, through a buffered reader of the socket."""

    IDLE_SECONDS = KeepAliveHTTP.IDLE_SECONDS  # uvicorn closes an idle connection after 5 s

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.address, self.timeout = (host, port), timeout
        self.request_head = f"Host: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.last_used = time.monotonic()

    def get(self, url: str) -> Reply:
        if time.monotonic() - self.last_used >= self.IDLE_SECONDS:
            self.close()
            self._connect()
        self.sock.sendall(f"GET {url} HTTP/1.1\r\n".encode("ascii") + self.request_head)
        status = int(self.file.readline().split(b" ", 2)[1])
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while size := int(self.file.readline().split(b";")[0], 16):
                parts.append(self.file.read(size))
                self.file.readline()  # the CRLF after the chunk
            while self.file.readline() not in (b"\r\n", b""):
                pass  # trailer fields, up to the empty line
            body = b"".join(parts)
        elif b"content-length" in headers:
            body = self.file.read(int(headers[b"content-length"]))
        else:
            raise RuntimeError(f"{url}: a reply with neither Content-Length nor chunks")
        if headers.get(b"connection") == b"close":
            raise RuntimeError(f"{url}: the server closed the connection")
        self.last_used = time.monotonic()
        return Reply(status, body)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

"""One HTTP request straight into an ASGI app, with no client library between: used by
bench/serve.py (through bench/serve_clients.py), which times the app without a client's own
cost, and by any test that needs an answer's exact bytes and headers."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

Headers = list[tuple[bytes, bytes]]


async def asgi_request(
    app: Any,
    url: str,
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = (),
    host: str = "localhost",
) -> tuple[int, Headers, bytes]:
    """(status, response headers, body) of `method url` (a path and query) sent to app."""
    path, _, query = url.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": urllib.parse.unquote(path),
        "raw_path": path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "root_path": "",
        "headers": [(b"host", host.encode("ascii")), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    status = 0
    response_headers: Headers = []
    body: list[bytes] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}  # asked again: the response has been sent

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            if status:
                raise AssertionError("a second response start")
            status = message["status"]
            response_headers.extend((bytes(k), bytes(v)) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, response_headers, b"".join(body)

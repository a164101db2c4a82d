"""Reading a response body within a byte cap, whatever its Content-Encoding layers.

httpx decodes a whole network read through every Content-Encoding layer before the caller
sees a byte, so a cap checked on `aiter_bytes()` comes too late: `Content-Encoding: gzip,
gzip` turns a 2 kB body into gigabytes within one read. Here the raw (still encoded) bytes
are read and decoded layer by layer in pieces of at most `PIECE` bytes, and decoding stops as
soon as `max_bytes` decoded bytes are kept. Peak memory is therefore about `max_bytes` plus
one piece per layer, whatever the server sends.

Encodings decoded: gzip / x-gzip, deflate (zlib-wrapped or raw, as httpx accepts), identity.
Like httpx, an encoding it cannot decode is passed through as is; the fetcher only
advertises `Accept-Encoding: gzip, deflate`. More than `MAX_LAYERS` layers is refused.
"""

from __future__ import annotations

import zlib

import httpx

from mlopsmortem.errors import FetchError

# What the fetcher tells servers it can decode (br and zstd would need optional packages).
ACCEPT_ENCODING = "gzip, deflate"
# Largest piece one decoding step may produce.
PIECE = 64 * 1024
# No real server stacks more than two; each layer holds a 32 KiB window.
MAX_LAYERS = 4
_GZIP_WBITS = zlib.MAX_WBITS | 16


class _Layer:
    """One Content-Encoding layer: a zlib decompressor fed in bounded steps."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._first = True
        wbits = _GZIP_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)

    def step(self, data: bytes) -> bytes:
        """Decode at most PIECE bytes from `data` (plus input left over from earlier)."""
        try:
            return self._zlib.decompress(data, PIECE)
        except zlib.error as exc:
            if self._first and self.encoding == "deflate":
                # Servers send raw deflate under the name "deflate" as often as zlib streams.
                self._first = False
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.step(data)
            raise FetchError("decode", f"bad {self.encoding} content encoding: {exc}") from exc
        finally:
            self._first = False

    @property
    def tail(self) -> bytes:
        """Input accepted but not yet decoded because the last step hit PIECE."""
        return self._zlib.unconsumed_tail

    @property
    def finished(self) -> bool:
        return self._zlib.eof


def _layers(response: httpx.Response) -> list[_Layer]:
    """The decoding chain, first to undo first (the reverse of the header's order)."""
    names = [
        value.strip().lower()
        for value in response.headers.get_list("content-encoding", split_commas=True)
    ]
    known = [name for name in names if name in ("gzip", "x-gzip", "deflate")]
    if len(known) > MAX_LAYERS:
        raise FetchError("decode", f"refused {len(known)} stacked content encodings")
    return [_Layer(name) for name in reversed(known)]


class _Sink:
    """Keeps decoded bytes up to `max_bytes`; `full` once more was offered."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.body = bytearray()
        self.full = False

    def take(self, data: bytes) -> None:
        room = self.max_bytes - len(self.body)
        if len(data) > room:
            self.body += data[:room]
            self.full = True
        else:
            self.body += data


def _push(layers: list[_Layer], index: int, data: bytes, sink: _Sink) -> None:
    """Send `data` through layers[index:] into the sink, one bounded piece at a time."""
    if index == len(layers):
        sink.take(data)
        return
    layer = layers[index]
    pending = data
    while not sink.full:
        if layer.finished:
            return  # bytes after the end of a stream are ignored, as httpx does
        out = layer.step(pending)
        if out:
            _push(layers, index + 1, out, sink)
        pending = layer.tail
        # A full piece may leave output inside zlib even when all input was consumed.
        if not pending and len(out) < PIECE:
            return


async def read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The decoded body, cut at `max_bytes`, and whether it was cut.

    Raises FetchError("decode") for a corrupt or absurdly layered encoding.
    """
    layers = _layers(response)
    sink = _Sink(max_bytes)
    async for chunk in response.aiter_raw():
        _push(layers, 0, chunk, sink)
        if sink.full:
            break  # leaving the stream unread closes the connection
    return bytes(sink.body), sink.full

"""A TCP proxy on 127.0.0.1 in front of the database, that can black-hole its connections.
Explained in notebooks/13_timeouts_and_cancellation.ipynb.

    async with Proxy(url) as proxy:  # or: proxy = await Proxy(url).start() ... await proxy.close()
        engine = create_async_engine(proxy.url)  # TCP to 127.0.0.1, forwarded to `url`
        proxy.blackhole()  # bytes stop moving both ways; no connection is closed
        proxy.restore()  # they move again

A black hole is what a network failure looks like from one end: a dead host, a dropped NAT
mapping or a firewall that discards packets closes nothing, and answers nothing. Making
one for real needs root and the firewall; this proxy plays it without either: it stops
forwarding, and every byte waits, in the proxy or in the operating system's buffers.

It also reads what the server sends and keeps every error message (`proxy.errors`), so a
notebook can show an error that the driver never reports (the server's FATAL message
before it closes an idle connection arrives while asyncpg is not waiting for anything).

It listens on 127.0.0.1 only, on a port the operating system picks, and forwards to the
configured server (its unix socket, or host and port).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Self

from sqlalchemy.engine import URL

from dbkit.urls import host_of


class Proxy:
    def __init__(self, target: URL) -> None:
        self.target = target
        self.errors: list[str] = []  # "FATAL 25P03 terminating connection due to ..."
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> URL:
        """`target` with the host and port replaced by the proxy's."""
        assert self._server is not None, "use `async with Proxy(url) as proxy`"
        port = self._server.sockets[0].getsockname()[1]
        query = {k: v for k, v in self.target.query.items() if k != "host"}
        return self.target.set(host="127.0.0.1", port=port, query=query)

    def blackhole(self) -> None:
        """Stop moving bytes, both ways, on every connection, present and future."""
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        """Stop listening and close every connection (the black hole ends too)."""
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host = host_of(self.target, default="/tmp")
        port = self.target.port or 5432
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _link(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            server_r, server_w = await self._open_target()
            to_server = asyncio.create_task(self._pump(client_r, server_w))
            try:
                await self._pump(server_r, client_w, _Watcher(self.errors))
            finally:
                to_server.cancel()
                await asyncio.gather(to_server, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            client_w.close()
            self._links.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        watch: _Watcher | None = None,
    ) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()  # a black hole: hold the bytes, close nothing
                if watch is not None:
                    watch.feed(data)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _Watcher:
    """Splits what the server sends into protocol messages and notes each ErrorResponse.
    The server's first byte may be its answer to a TLS request ('N' or 'S'), which has no
    length; after an 'S' everything is encrypted and nothing more is read."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        self.buffer = bytearray()
        self.first = True
        self.encrypted = False

    def feed(self, data: bytes) -> None:
        if self.encrypted:
            return
        self.buffer += data
        if self.first and self.buffer[:1] in (b"N", b"S"):  # a server's first message is 'R'
            self.encrypted = self.buffer[:1] == b"S"
            del self.buffer[:1]
        self.first = False
        while len(self.buffer) >= 5:
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            kind, body = self.buffer[:1], bytes(self.buffer[5 : 1 + length])
            del self.buffer[: 1 + length]
            if kind == b"E":
                self.errors.append(_describe(body))


def _describe(body: bytes) -> str:
    """'FATAL 25P03 terminating connection ...' from an ErrorResponse's fields."""
    fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
    severity = fields.get(b"V", fields.get(b"S", "?"))
    return f"{severity} {fields.get(b'C', '?')} {fields.get(b'M', '')}"

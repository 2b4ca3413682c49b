"""Count round trips on the wire: a tiny PostgreSQL proxy that reads what the client sends.

A round trip is one exchange in which the client sends messages and then waits for the
server's answer. In PostgreSQL's protocol every such exchange is one simple `Query`, or a
batch of extended-protocol messages (Parse/Bind/Execute ...) closed by a `Sync` (the
server answers with ReadyForQuery) or by a `Flush` (asyncpg prepares a statement with
Parse + Describe + Flush and waits for the description). So counting the client's Query,
Sync and Flush messages counts round trips, whatever library sits on top: nothing is
assumed.

`WireCounter` listens on a unix socket in a temp directory and forwards every byte to the
real server (unix socket or TCP). Point an engine or an asyncpg pool at `counter.url`
instead of the real URL. It also labels each round trip with its SQL (`BEGIN;`, the
query, `ROLLBACK;`, ...), which is how notebooks/11_what_a_request_costs.ipynb shows them.

The proxy adds latency: count through it, time without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tempfile
from collections import Counter
from pathlib import Path

from sqlalchemy.engine import URL

from dbkit.urls import host_of

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class _ClientStream:
    """Splits what one client sends into protocol messages and labels its round trips."""

    def __init__(self, counter: WireCounter) -> None:
        self.counter = counter
        self.buffer = bytearray()
        self.started = False  # after the startup message, every message has a type byte
        self.statements: dict[bytes, str] = {}  # prepared statement name -> SQL
        self.batch: list[str] = []  # what the current extended-protocol exchange does

    def feed(self, data: bytes) -> bytes:
        """Parse `data`; return any bytes the proxy must answer itself (SSL refusal)."""
        self.buffer += data
        reply = b""
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return reply
                (length,) = struct.unpack("!i", self.buffer[:4])
                if len(self.buffer) < length:
                    return reply
                (code,) = struct.unpack("!i", self.buffer[4:8])
                del self.buffer[:length]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    reply += b"N"  # plain text only: we must be able to read it
                    continue
                self.started = True
                self.counter.connects += 1
                continue
            if len(self.buffer) < 5:
                return reply
            kind = chr(self.buffer[0])
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return reply
            body = bytes(self.buffer[5 : 1 + length])
            del self.buffer[: 1 + length]
            self.message(kind, body)

    def message(self, kind: str, body: bytes) -> None:
        if kind == "Q":  # simple query: one round trip by itself
            self.counter.trip(body.rstrip(b"\0").decode())
        elif kind == "P":  # Parse: name \0 query \0 ...
            name, query, _ = body.split(b"\0", 2)
            self.statements[name] = query.decode()
            self.batch.append("prepare " + query.decode())
        elif kind == "B":  # Bind: portal \0 statement \0 ...
            _, name, _ = body.split(b"\0", 2)
            self.batch.append(self.statements.get(name, "?"))
        elif kind == "C":  # Close a prepared statement or portal
            self.batch.append("close statement")
        elif kind in "SH":  # Sync (or Flush): the client now waits for the answer
            self.counter.trip(" + ".join(self.batch) or "sync")
            self.batch = []


class WireCounter:
    """A counting proxy in front of the server at `upstream` (a SQLAlchemy URL)."""

    def __init__(self, upstream: URL) -> None:
        self.upstream = upstream
        self.trips: list[str] = []  # one label per round trip, in order
        self.connects = 0  # new connections (their start-up exchange is not counted)
        self._dir = tempfile.TemporaryDirectory(prefix="wire-")
        self._server: asyncio.AbstractServer | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> URL:
        """The upstream URL, with the host replaced by this proxy's socket directory."""
        query = {k: v for k, v in self.upstream.query.items() if k not in ("host", "ssl")}
        up = self.upstream  # URL.set() ignores None, so build it anew without host and port
        return URL.create(
            up.drivername,
            up.username,
            up.password,
            None,
            None,
            up.database,
            {**query, "host": self._dir.name},
        )

    @property
    def socket_dir(self) -> str:
        return self._dir.name

    def trip(self, label: str) -> None:
        self.trips.append(label)

    def reset(self) -> None:
        self.trips.clear()
        self.connects = 0

    def summary(self) -> Counter[str]:
        return Counter(self.trips)

    async def __aenter__(self) -> WireCounter:
        path = Path(self._dir.name) / ".s.PGSQL.5432"
        self._server = await asyncio.start_unix_server(self._handle, path=str(path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._dir.cleanup()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host = host_of(self.upstream)
        port = self.upstream.port or 5432
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = _ClientStream(self)
        up_reader: asyncio.StreamReader | None = None
        up_writer: asyncio.StreamWriter | None = None

        async def client_to_server() -> None:
            nonlocal up_reader, up_writer
            while data := await reader.read(65536):
                reply = stream.feed(data)
                if reply:  # an SSL/GSS request, alone in its packet: answered here
                    writer.write(reply)
                    await writer.drain()
                    continue
                if up_writer is None:
                    up_reader, up_writer = await self._open_upstream()
                    forward.set()
                up_writer.write(data)
                await up_writer.drain()

        forward = asyncio.Event()

        async def server_to_client() -> None:
            await forward.wait()
            assert up_reader is not None
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        self._pumps.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._pumps.difference_update(tasks)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

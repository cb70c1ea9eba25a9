"""A counting TCP relay in front of PostgreSQL: the platform's processes connect through it, and
it counts the round trips they make, whatever library issues them (the ORM, SQLAlchemy Core,
raw asyncpg).

    python bench/pgcount.py --port P --stats-port S --upstream-port 5432

A round trip is one message the client must wait on: a simple `Query` ('Q') or a `Sync` ('S')
closing a batch of extended-protocol messages (Parse/Bind/Execute; an `executemany` pipelines
many Bind/Execute pairs before one Sync, and counts once). Executed statements are counted by
their first word (BEGIN, COMMIT, SELECT, INSERT, ...), taken from the Parse (or Query) that
named them. Only the client-to-server stream is parsed, and only the five-byte message headers
unless the message is a Query, Parse or Bind; the server's answers are relayed untouched.

Connecting to the stats port answers the counters as one JSON line and closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
from collections import Counter

import uvloop

HOST = "127.0.0.1"
# Untyped first messages (no type byte): SSLRequest and GSSENCRequest are followed by another
# untyped message; the StartupMessage ends the untyped part.
NEGOTIATION_CODES = {80877103, 80877104}
PARSED_TYPES = {ord("Q"), ord("P"), ord("B")}


class Counts:
    def __init__(self) -> None:
        self.round_trips = 0
        self.statements: Counter[str] = Counter()
        self.connections = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "round_trips": self.round_trips,
            "statements": dict(self.statements),
            "connections": self.connections,
        }


COUNTS = Counts()


def _cstring(data: bytes, start: int) -> tuple[str, int]:
    end = data.index(b"\x00", start)
    return data[start:end].decode("utf-8", "replace"), end + 1


def _kind(sql: str) -> str:
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    return words[0].rstrip(";").upper() if words else "EMPTY"


class ClientStream:
    """Splits the client's byte stream into protocol messages and counts them."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skip = 0  # bytes of the current (unparsed) message body still to pass
        self.untyped = True
        self.prepared: dict[str, str] = {}  # statement name → kind
        self.portal_kind = "UNKNOWN"

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        if self.skip:
            taken = min(self.skip, len(view))
            self.skip -= taken
            view = view[taken:]
        self.buffer += view
        while self._next():
            pass

    def _next(self) -> bool:
        buffer = self.buffer
        if self.untyped:
            if len(buffer) < 8:
                return False
            length, code = struct.unpack_from("!ii", buffer)
            if len(buffer) < length:
                return False
            del buffer[:length]
            self.untyped = code in NEGOTIATION_CODES
            return True
        if len(buffer) < 5:
            return False
        kind = buffer[0]
        (length,) = struct.unpack_from("!i", buffer, 1)
        total = 1 + length
        if kind not in PARSED_TYPES:
            if len(buffer) >= total:
                del buffer[:total]
            else:
                self.skip = total - len(buffer)
                buffer.clear()
            self._count(kind, b"")
            return bool(buffer)
        if len(buffer) < total:
            return False
        body = bytes(buffer[5:total])
        del buffer[:total]
        self._count(kind, body)
        return True

    def _count(self, kind: int, body: bytes) -> None:
        if kind == ord("S"):
            COUNTS.round_trips += 1
        elif kind == ord("Q"):
            COUNTS.round_trips += 1
            COUNTS.statements[_kind(_cstring(body, 0)[0])] += 1
        elif kind == ord("P"):
            name, offset = _cstring(body, 0)
            sql, _ = _cstring(body, offset)
            self.prepared[name] = _kind(sql)
        elif kind == ord("B"):
            _, offset = _cstring(body, 0)
            statement, _ = _cstring(body, offset)
            self.portal_kind = self.prepared.get(statement, "UNKNOWN")
        elif kind == ord("E"):
            COUNTS.statements[self.portal_kind] += 1


class Relay(asyncio.Protocol):
    """One direction's sink: writes what the other side's protocol receives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self.stream: ClientStream | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.stream is not None:
            self.stream.feed(data)
        if self.peer is None:
            self.pending.append(data)
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


async def handle(loop: asyncio.AbstractEventLoop, client: Relay, upstream_port: int) -> None:
    try:
        transport, server = await loop.create_connection(Relay, HOST, upstream_port)
    except OSError:
        if client.transport is not None:
            client.transport.close()
        return
    server.peer = client.transport
    client.peer = transport
    for data in client.pending:
        transport.write(data)
    client.pending.clear()


async def stats(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(json.dumps(COUNTS.as_dict()).encode() + b"\n")
    await writer.drain()
    writer.close()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    connecting: set[asyncio.Task[None]] = set()

    def accept() -> Relay:
        client = Relay()
        client.stream = ClientStream()
        COUNTS.connections += 1
        task = loop.create_task(handle(loop, client, args.upstream_port))
        connecting.add(task)  # the loop holds tasks weakly
        task.add_done_callback(connecting.discard)
        return client

    server = await loop.create_server(accept, HOST, args.port)
    stats_server = await asyncio.start_server(stats, HOST, args.stats_port)
    async with server, stats_server:
        await asyncio.gather(server.serve_forever(), stats_server.serve_forever())


def read_stats(port: int) -> dict[str, object]:
    """The counters of the relay whose stats port is `port` (for the harness)."""
    import socket

    with socket.create_connection((HOST, port), timeout=10) as sock:
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return dict(json.loads(data))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats-port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, default=5432)
    uvloop.run(main(parser.parse_args()))

"""Redis protocol (RESP) built column-wise with Arrow kernels, and a pipelined raw sender.

Values reach it as text (`accelsync.targets.value_text`).

Encoding a command per row in Python costs microseconds a row; here a whole batch of commands is
built by Arrow's string kernels in C++, sent as one buffer, and the replies are counted without
parsing each one. Every command used returns a one-line reply (integer, status or error), so
counting line ends counts replies.
"""

from __future__ import annotations

import socket
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.targets.value_text import concat

CRLF = "\r\n"


class RedisReplyError(Exception):
    """Redis answered a pipelined command with an error."""


def bulk(values: pa.Array) -> pa.Array:
    """`$<len>\\r\\n<value>\\r\\n` per value; null stays null."""
    lengths = pc.cast(pc.binary_length(values), pa.string()).cast(pa.binary())
    return pc.binary_join_element_wise(b"$", lengths, b"\r\n", values, b"\r\n", b"")


def bulk_parts(values: pa.Array) -> list:
    """The pieces of `bulk(values)`, for callers that join a whole command in one kernel call."""
    return [b"$", pc.cast(pc.binary_length(values), pa.string()).cast(pa.binary()), b"\r\n", values, b"\r\n"]


def bulk_literal(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def join(parts: Sequence, null_as_empty: bool = True) -> pa.Array:
    """Concatenate arrays and byte literals row by row."""
    if null_as_empty:
        return pc.binary_join_element_wise(*parts, b"", null_handling="replace", null_replacement=b"")
    return pc.binary_join_element_wise(*parts, b"")


def array_header(counts: pa.Array) -> pa.Array:
    """`*<n>\\r\\n` per row, from an integer array of argument counts."""
    return pc.binary_join_element_wise(b"*", pc.cast(counts, pa.string()).cast(pa.binary()), b"\r\n", b"")


def array_header_literal(count: int) -> bytes:
    return b"*%d\r\n" % count


def command(*args: str | bytes) -> bytes:
    """One command with literal arguments."""
    return b"*%d\r\n" % len(args) + b"".join(bulk_literal(a) for a in args)


def count_existing(sock: socket.socket, keys: pa.Array, chunk: int = 10_000) -> int:
    """How many of `keys` exist: EXISTS commands of `chunk` keys each, built by Arrow kernels and
    pipelined on a raw socket (one round trip for all of them); the integer replies summed."""
    keys = keys.drop_null() if keys.null_count else keys
    commands = 0
    for start in range(0, len(keys), chunk):
        part = keys.slice(start, chunk)
        sock.sendall(b"*%d\r\n$6\r\nEXISTS\r\n" % (len(part) + 1) + concat(bulk(part)))
        commands += 1
    total, data = 0, b""
    while commands:
        got = sock.recv(1 << 16)
        if not got:
            raise ConnectionError("Redis closed the connection while counting keys")
        data += got
        *lines, data = data.split(b"\r\n")
        for line in lines:
            if not line.startswith(b":"):
                raise RedisReplyError(line.decode("utf-8", "replace"))
            total += int(line[1:])
            commands -= 1
    return total


class RespPipe:
    """Sends command buffers on a raw socket and reads their one-line replies in the background
    of the next send, so the client encodes batch n+1 while Redis executes batch n."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.pending = 0
        self._tail = b"\n"
        self._first_error: bytes | None = None
        self._buffer = bytearray(1 << 20)

    def send(self, payload: bytes, replies: int, max_in_flight: int = 0) -> None:
        """Send a buffer holding `replies` commands; keep at most `max_in_flight` replies unread."""
        if replies == 0:
            return
        self.sock.sendall(payload)
        self.pending += replies
        if self.pending > max_in_flight:
            self._read(self.pending - max_in_flight)

    def drain(self) -> None:
        self._read(self.pending)
        if self._first_error is not None:
            error, self._first_error = self._first_error, None
            raise RedisReplyError(error.decode("utf-8", "replace"))

    def _read(self, replies: int) -> None:
        view = memoryview(self._buffer)
        while replies > 0:
            got = self.sock.recv_into(self._buffer)
            if got == 0:
                raise ConnectionError("Redis closed the connection during a pipelined write")
            chunk = bytes(view[:got])
            lines = chunk.count(b"\n")
            if self._first_error is None and (self._tail == b"\n" and chunk[:1] == b"-" or b"\n-" in chunk):
                start = 0 if chunk[:1] == b"-" and self._tail == b"\n" else chunk.index(b"\n-") + 1
                end = chunk.find(b"\r", start)
                self._first_error = chunk[start:end if end > 0 else None]
            self._tail = chunk[-1:]
            replies -= lines
            self.pending -= lines
        if self.pending < 0:
            raise RedisReplyError("more replies than commands sent; the connection is out of step")

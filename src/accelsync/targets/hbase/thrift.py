"""HBase's Thrift `mutateRows` messages built column-wise with Arrow kernels and pipelined on
happybase's socket, replies read a window behind (the writer's fast path)."""

from __future__ import annotations

import sys
from collections import deque
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import struct


_WINDOW = 64                # mutateRows messages sent before their replies are read


# TType codes of the Thrift binary protocol
_BOOL, _I64, _STRING, _STRUCT, _MAP, _LIST = 2, 10, 11, 12, 13, 15


def _field(ttype: int, fid: int) -> bytes:
    return struct.pack(">bh", ttype, fid)


def _string(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def _be32(lengths: pa.Array) -> pa.Array:
    """Big-endian int32 of each value, as 4-byte binary values."""
    raw = np.asarray(pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False), dtype=">i4")
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(raw), [None, pa.py_buffer(raw.tobytes())]) \
        .cast(pa.binary())


def row_mutations(keys: pa.Array, cells: list[bytes], values: list[pa.Array]) -> pa.Array:
    """One encoded BatchMutation struct per row: a put Mutation per non-null value, a delete
    Mutation per null one (Mutation: isDelete, column, value, writeToWAL)."""
    wal = _field(_BOOL, 4) + b"\x01" + b"\x00"  # writeToWAL = true, end of struct
    parts: list = [_field(_STRING, 1), _be32(pc.binary_length(keys)), keys,
                   _field(_LIST, 2) + bytes([_STRUCT]) + struct.pack(">i", len(cells))]
    for cell, value in zip(cells, values):
        column = _field(_STRING, 2) + _string(cell)
        put = pc.binary_join_element_wise(_field(_BOOL, 1) + b"\x00" + column + _field(_STRING, 3),
                                          _be32(pc.binary_length(value)), value, wal, b"")
        parts.append(pc.fill_null(put, _field(_BOOL, 1) + b"\x01" + column + wal))
    parts.append(b"\x00")  # end of BatchMutation
    return pc.binary_join_element_wise(*parts, b"")


def mutation_messages(pieces: pa.Array, stamps: Optional[pa.Array], batch_size: int) -> Iterator[tuple[Optional[int], int, memoryview]]:
    """(timestamp or None, rows, encoded rows) per mutateRows(Ts) call: `batch_size` rows at most,
    and one timestamp per call (rows sorted by it first)."""
    if stamps is not None:
        order = pc.sort_indices(stamps)
        pieces = pc.take(pieces, order)
        stamps_np = pc.take(stamps, order).to_numpy()
        starts = np.concatenate(([0], np.flatnonzero(np.diff(stamps_np)) + 1, [len(stamps_np)]))
    else:
        starts = np.array([0, len(pieces)])
    if isinstance(pieces, pa.ChunkedArray):
        pieces = pieces.combine_chunks()
    offsets = np.frombuffer(pieces.buffers()[1], dtype=np.int32)[pieces.offset:pieces.offset + len(pieces) + 1]
    data = memoryview(pieces.buffers()[2])
    for low, high in zip(starts[:-1].tolist(), starts[1:].tolist()):
        stamp = None if stamps is None else int(stamps_np[low])
        for first in range(low, high, batch_size):
            last = min(high, first + batch_size)
            yield stamp, last - first, data[offsets[first]:offsets[last]]


class MutationPipe:
    """Sends encoded mutateRows(Ts) calls on a happybase connection's transport and reads their
    replies `_WINDOW` calls behind, so the server applies one call while the next is encoded."""

    def __init__(self, client, table: bytes):
        from thriftpy2.protocol import TBinaryProtocol

        self.idl = sys.modules["Hbase_thrift"]
        self.transport = client.transport
        self.protocol = TBinaryProtocol(client.transport, decode_response=False)
        self.table = table
        self.pending: deque[str] = deque()
        self.seqid = 0
        self.unflushed = 0

    def send(self, timestamp: Optional[int], rows: int, body) -> None:
        api = "mutateRows" if timestamp is None else "mutateRowsTs"
        self.seqid += 1
        head = (struct.pack(">I", 0x80010001) + _string(api.encode()) + struct.pack(">i", self.seqid)
                + _field(_STRING, 1) + _string(self.table)
                + _field(_LIST, 2) + bytes([_STRUCT]) + struct.pack(">i", rows))
        if timestamp is None:
            tail = _field(_MAP, 3) + bytes([_STRING, _STRING]) + struct.pack(">i", 0) + b"\x00"
        else:
            tail = (_field(_I64, 3) + struct.pack(">q", timestamp)
                    + _field(_MAP, 4) + bytes([_STRING, _STRING]) + struct.pack(">i", 0) + b"\x00")
        self.transport.write(b"".join((head, body, tail)))
        self.pending.append(api)
        self.unflushed += len(body)
        if self.unflushed >= 1 << 16:
            self._flush()
        while len(self.pending) > _WINDOW:
            self._reply()

    def drain(self) -> None:
        while self.pending:
            self._reply()

    def push(self) -> None:
        """Send what is buffered now (the source may be slow to give the next batch)."""
        if self.unflushed:
            self._flush()

    def _flush(self) -> None:
        self.transport.flush()
        self.unflushed = 0

    def _reply(self) -> None:
        from thriftpy2.thrift import TApplicationException, TMessageType

        if self.unflushed:
            self._flush()
        api = self.pending.popleft()
        _, kind, _ = self.protocol.read_message_begin()
        if kind == TMessageType.EXCEPTION:
            failure = TApplicationException()
            failure.read(self.protocol)
            self.protocol.read_message_end()
            raise failure
        result = getattr(self.idl.Hbase, f"{api}_result")()
        result.read(self.protocol)
        self.protocol.read_message_end()
        if result.io is not None:
            raise result.io
        if result.ia is not None:
            raise result.ia

"""Streaming a file (or its piece) in blocks of whole lines, plain or gzip, up to the size it had
at plan time; a damaged gzip stream keeps the lines before the damage."""

from __future__ import annotations

import gzip
import zlib
from typing import Iterator

import fsspec

from accelsync.engine.dirty import DirtyLog
from accelsync.errors import TerminalError, TransientError


BLOCK_BYTES = 4 * 1024 * 1024    # bytes of whole lines parsed at once (one Arrow batch)
BOM = b"\xef\xbb\xbf"


def filesystem(uri: str):
    try:
        return fsspec.core.url_to_fs(uri)
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise TerminalError(f"source.path: {uri}: {exc}") from None
    except ValueError as exc:
        raise TerminalError(f"source.path: {uri}: {exc}") from None


class Bounded:
    """A read-only view of a stream that ends after `limit` bytes (the size fixed at plan time)."""

    def __init__(self, raw, limit: int):
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.raw.read(size)
        self.left -= len(data)
        return data


def read_blocks(piece: dict, dirty: DirtyLog) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, bytes of whole lines each ending in a newline) of one piece.

    A plain piece owns the lines that start in [start, end); gzip files are always whole.
    A damaged gzip stream keeps the lines before the damage; the rest is one dirty record.
    """
    fs, path = filesystem(piece["path"])
    try:
        handle = fs.open(path, "rb")
    except FileNotFoundError:
        raise TransientError(f"{piece['path']} disappeared after planning; rerun to plan again") from None
    with handle:
        end = None
        if piece["gzip"]:
            stream, line, pos = gzip.GzipFile(fileobj=Bounded(handle, piece["size"]), mode="rb"), 1, 0
        else:
            begin = _first_line_start(handle, piece["start"], piece["size"])
            if begin >= piece["end"]:
                return
            line = 1 + _count_newlines(handle, begin) if begin else 1
            handle.seek(begin)
            stream, pos, end = Bounded(handle, piece["size"] - begin), 0, piece["end"] - begin
        carry = b""
        opening = piece["start"] == 0  # line 1 starts at 0 (before any byte order mark): this piece's
        try:
            if opening:  # a UTF-8 byte order mark is not part of the first line
                carry = stream.read(len(BOM))
                if carry == BOM:
                    carry, pos = b"", len(BOM)
            while True:
                if end is not None and pos >= end and not opening:  # pos: where the next line starts
                    return
                chunk = stream.read(BLOCK_BYTES)
                data = carry + chunk if carry else chunk
                if not chunk:  # end of file: a last line without its newline is still a line
                    if not data:
                        return
                    if not data.endswith(b"\n"):
                        data += b"\n"
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[:cut + 1], data[cut + 1:]
                if end is not None and pos + len(block) >= end:
                    yield line, block[:block.find(b"\n", max(0, end - pos - 1)) + 1]
                    return
                yield line, block
                opening = False
                line += block.count(b"\n")
                pos += len(block)
                if not chunk:
                    return
        except (EOFError, OSError, zlib.error) as exc:
            if not piece["gzip"]:
                raise TransientError(f"reading {piece['path']} failed: {exc}") from None
            dirty.add({"file": piece["path"], "line": line},
                      f"gzip: damaged or truncated stream, lines from {line} on are unreadable ({exc})")


def _first_line_start(handle, start: int, size: int) -> int:
    """The offset of the first line that starts at or after `start`."""
    if start == 0:
        return 0
    handle.seek(start - 1)
    position = start - 1
    while position < size:
        chunk = handle.read(min(65536, size - position))
        if not chunk:
            break
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return size


def _count_newlines(handle, upto: int) -> int:
    handle.seek(0)
    count, left = 0, upto
    while left > 0:
        chunk = handle.read(min(8 << 20, left))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count

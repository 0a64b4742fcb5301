"""Compressed Redis values: how accelsync writes them and how any reader decodes them.

With `compression` set, every string or json value is stored as

    0xFF, a codec letter, then the compressed bytes

    0xFF 'z'  zstd   (a standard zstd frame)
    0xFF 's'  snappy (raw block format, as Snappy.compress / snappy.compress in most libraries)
    0xFF 'g'  gzip   (RFC 1952, as gzip.compress)

0xFF never starts valid UTF-8, so a text or JSON value that is not compressed can never be
mistaken for one that is: a reader can decode without knowing the spec (`decode_value`). Binary
string columns are the exception: a raw value may start with 0xFF, so readers of binary values
go by the spec's setting.
"""

from __future__ import annotations

import zlib

import pyarrow as pa
import pyarrow.compute as pc

MARK = b"\xff"
LETTERS = {"zstd": b"z", "snappy": b"s", "gzip": b"g"}
CODECS = {letter: name for name, letter in LETTERS.items()}
GZIP_LEVEL = 6
ZSTD_LEVEL = 3


def compressor(codec: str):
    """A function bytes -> marked compressed bytes, with its state (e.g. a zstd context) reused."""
    prefix = MARK + LETTERS[codec]
    if codec == "zstd":
        import zstandard

        compress = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress
        return lambda data: prefix + compress(data)
    if codec == "snappy":
        import cramjam

        compress = cramjam.snappy.compress_raw
        return lambda data: prefix + bytes(compress(data))
    if codec == "gzip":
        return lambda data: prefix + zlib.compress(data, GZIP_LEVEL, wbits=31)
    raise ValueError(f"unknown compression {codec!r}")


def compress_array(values: pa.Array, codec: str) -> pa.Array:
    """Compress each non-null value of a binary array (one C call per value; nulls stay null)."""
    compress = compressor(codec)
    return pa.array([None if v is None else compress(v) for v in values.to_pylist()], pa.binary())


def total_bytes(values: pa.Array) -> int:
    return pc.sum(pc.binary_length(values)).as_py() or 0


def decode_value(value: bytes | None) -> bytes | None:
    """The original bytes of a value read from Redis, compressed by accelsync or not."""
    if value is None or value[:1] != MARK or len(value) < 2:
        return value
    codec = CODECS.get(value[1:2])
    if codec is None:
        return value
    data = value[2:]
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data)
    if codec == "snappy":
        import cramjam

        return bytes(cramjam.snappy.decompress_raw(data))
    return zlib.decompress(data, wbits=31)

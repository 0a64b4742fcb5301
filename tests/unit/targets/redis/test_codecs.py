"""The stored format of compressed Redis values (accelsync.targets.redis.codecs), checked against the codecs'
own libraries."""

from __future__ import annotations

import gzip

import cramjam
import pyarrow as pa
import pytest
import zstandard

from accelsync.targets.redis.codecs import compress_array, decode_value, total_bytes

TEXTS = ['{"name": "héllo", "city": "Berlin"}' * 3, "", "plain text 😀"]


@pytest.mark.parametrize("codec, letter, decompress", [
    ("zstd", b"z", zstandard.ZstdDecompressor().decompress),
    ("snappy", b"s", lambda data: bytes(cramjam.snappy.decompress_raw(data))),
    ("gzip", b"g", gzip.decompress),
])
def test_values_are_marked_and_decode_with_the_codec_library(codec, letter, decompress):
    values = pa.array([t.encode() for t in TEXTS] + [None], pa.binary())
    packed = compress_array(values, codec)
    assert packed.null_count == 1 and packed[3].as_py() is None
    for text, stored in zip(TEXTS, packed.to_pylist()):
        assert stored[:2] == b"\xff" + letter
        assert decompress(stored[2:]) == text.encode()
        assert decode_value(stored) == text.encode()
    assert total_bytes(packed) == sum(len(v) for v in packed.to_pylist()[:3])


def test_plain_values_pass_through_unchanged():
    for value in (b'{"a": 1}', b"", "zwölf".encode(), None, b"\xff", b"\xffq unknown codec"):
        assert decode_value(value) == value

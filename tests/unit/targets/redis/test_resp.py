"""The Redis protocol built column-wise."""

from __future__ import annotations

import pyarrow as pa

from accelsync.targets.redis import resp


def test_bulk_strings_count_bytes_not_characters():
    assert resp.bulk(pa.array(["é".encode(), b""])).to_pylist() == [b"$2\r\n\xc3\xa9\r\n", b"$0\r\n\r\n"]
    assert resp.command("HSET", "k", "f", "v") == b"*4\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\nf\r\n$1\r\nv\r\n"

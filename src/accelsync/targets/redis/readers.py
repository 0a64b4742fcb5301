"""Helpers for services that read what accelsync wrote.

A Redis target in `mode: swap` keeps each published version under its own prefix and one
pointer key to the live one. Read the pointer once per request (or cache it briefly) and use
it for every key of that request: all of them then come from the same version.

`get` also undoes the target's `compression` (see `accelsync.targets.redis.codecs` for the stored format).
"""

from __future__ import annotations

from typing import Any

from accelsync.targets.redis.codecs import decode_value
from accelsync.targets.redis.versions import live_key


class RedisSwapReader:
    """Reads keys of a swapped Redis keyspace through its live pointer."""

    def __init__(self, client: Any, sync_name: str):
        self.client = client
        self.pointer = live_key(sync_name)

    def prefix(self) -> str:
        """The live version's key prefix; raises LookupError before the first publish."""
        value = self.client.get(self.pointer)
        if value is None:
            raise LookupError(f"nothing published yet ({self.pointer} is not set)")
        return value.decode() if isinstance(value, bytes) else value

    def key(self, key: str, prefix: str | None = None) -> str:
        """The physical key for a logical key such as `user:42`."""
        return (prefix if prefix is not None else self.prefix()) + key

    def get(self, key: str) -> Any:
        """A string or json value, decompressed when accelsync compressed it."""
        return decode_value(self.client.get(self.key(key)))

    def hgetall(self, key: str) -> dict:
        return self.client.hgetall(self.key(key))

"""Redis target: keys from a template, hash / string / json values, written in large pipelines.

Modes: `upsert` writes the keys in place. `swap` writes each run under its own version prefix
`<sync name>:<run id>:` and `publish` flips one pointer key, `accelsync:live:<sync name>`, whose
value is the live prefix; readers read the pointer, then `<prefix><key>` (see
`accelsync.targets.redis.readers.RedisSwapReader`), so they never see a mix of versions, and see the old
version until the gate passed. Superseded versions are deleted at publish (UNLINK: Redis frees
the memory in the background).

Value text is what `value_text.as_text` documents. A hash row writes HSET of its non-null fields and
HDEL of its null ones, so a rerun leaves the key equal to the source row. A row is dirty when a
key column is NULL, a string value is NULL, or every field of a hash is NULL (Redis has no
empty hash).
"""

from __future__ import annotations

import base64
import json
import math
import time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.connections import Connection, get_connection
from accelsync.errors import TerminalError, TransientError, is_availability_failure
from accelsync.spec import Spec, format_duration
from accelsync.targets import value_text
from accelsync.targets.base import BatchWriter, Target
from accelsync.targets.redis import resp
from accelsync.targets.redis.codecs import compress_array, decode_value, total_bytes
from accelsync.targets.redis.spec import RedisTargetSpec
from accelsync.targets.redis.versions import (expire_prefix, unlink_prefix, live_key, retired_key, version_prefix,
                                              versions_key)
from accelsync.targets.value_text import same as _same, show as _show, text as _text


def redis_client(conn: Connection):
    """A redis-py client for an Airflow-style Redis connection (db from extra or the URI path)."""
    import redis

    db = conn.extra.get("db", conn.schema or 0)
    ssl = str(conn.extra.get("ssl", "false")).lower() in ("1", "true", "yes")
    return redis.Redis(host=conn.host or "127.0.0.1", port=conn.port or 6379, db=int(db or 0),
                       username=conn.login or None, password=conn.password or None, ssl=ssl,
                       socket_timeout=float(conn.extra.get("socket_timeout", 60)),
                       socket_connect_timeout=10)


class RedisTarget(Target):
    type = "redis"
    options: RedisTargetSpec

    def __init__(self, spec: Spec):
        super().__init__(spec)
        self.ttl_ms = int(self.options.ttl.total_seconds() * 1000) if self.options.ttl else None

    def prepare(self, run_id: str) -> dict[str, Any]:
        client = self._client()
        try:
            client.ping()
            if self.options.mode == "swap":
                prefix = version_prefix(self.spec.name, run_id)
                # versions of runs that died (killed) before their gate: never live, never to be
                self._remove_versions(client, keep={prefix})
                client.sadd(versions_key(self.spec.name), prefix)
                return {"prefix": prefix}
        except (TerminalError, TransientError):
            raise
        except Exception as exc:
            raise _redis_error(exc, self._conn().safe_address(), self._conn().redact(str(exc))) from None
        finally:
            client.close()
        return {"prefix": ""}

    def publish(self, context: dict[str, Any]) -> dict[str, Any]:
        """Point readers at this run's version in one step; the version it replaces stays readable
        for `grace` (its keys expire then), versions that were never live are removed now."""
        if self.options.mode != "swap":
            return {}
        prefix = context["prefix"]
        client = self._client()
        try:
            previous = client.getset(live_key(self.spec.name), prefix)
            previous = previous.decode() if previous else None
            expiring = 0
            if previous and previous != prefix:
                expiring = self._retire(client, previous)
            removed = self._remove_versions(client, keep={prefix, previous})
            return {"live": prefix, "previous": previous, "superseded_keys_expiring": expiring,
                    "grace": format_duration(self.options.grace), "dead_keys_removed": removed}
        finally:
            client.close()

    def discard(self, context: dict[str, Any]) -> None:
        """A failed run's version was never live: remove it now."""
        prefix = context.get("prefix")
        if self.options.mode != "swap" or not prefix:
            return
        client = self._client()
        try:
            if (client.get(live_key(self.spec.name)) or b"").decode() != prefix:
                unlink_prefix(client, prefix)
                client.srem(versions_key(self.spec.name), prefix)
        finally:
            client.close()

    def _retire(self, client, prefix: str) -> int:
        """Let a superseded version live `grace` longer, then Redis expires its keys itself."""
        grace_ms = int(self.options.grace.total_seconds() * 1000)
        retired = expire_prefix(client, prefix, grace_ms) if grace_ms else unlink_prefix(client, prefix)
        until = time.time() + grace_ms / 1000
        client.hset(retired_key(self.spec.name), prefix, f"{until:.3f}")
        return retired

    def _remove_versions(self, client, keep: set[str | None]) -> int:
        """Remove every version but `keep`: retired ones whose grace is over (their keys have
        expired: only the bookkeeping goes) and ones that were never live (a failed or killed run)."""
        live = (client.get(live_key(self.spec.name)) or b"").decode()
        retired = {k.decode(): float(v) for k, v in client.hgetall(retired_key(self.spec.name)).items()}
        removed = 0
        for version in client.smembers(versions_key(self.spec.name)):
            version = version.decode()
            if version in keep or version == live:
                continue
            if version in retired and retired[version] > time.time():
                continue  # still within its grace
            removed += unlink_prefix(client, version)
            client.srem(versions_key(self.spec.name), version)
            client.hdel(retired_key(self.spec.name), version)
        return removed

    def value_fields(self, schema: pa.Schema) -> list[str]:
        fields = self.options.value.value_columns()
        if fields:
            missing = [f for f in fields if f not in schema.names]
            if missing:
                raise TerminalError(f"target.value.fields: {missing} are not columns of the synced data "
                                    f"(columns: {', '.join(schema.names)})")
            return fields
        return list(schema.names)

    def open_writer(self, context: dict[str, Any]) -> BatchWriter:
        return _RedisWriter(self, context)

    def gate_columns(self) -> list[str]:
        return list(self.options.key.columns)

    def count_present(self, batch: pa.RecordBatch, context: dict[str, Any]) -> int:
        """Keys of these rows that exist: EXISTS in commands of 10,000 keys, pipelined."""
        keys = _keys(self.options.key, batch, context)
        conn = self._conn()
        client = redis_client(conn)
        try:
            connection = client.connection_pool.get_connection()
            connection.connect()
            try:
                return resp.count_existing(connection._sock, keys)
            finally:
                connection.disconnect()  # its socket was read directly: never reuse it
        except (OSError, ConnectionError) as exc:
            raise _redis_error(exc, conn.safe_address(), conn.redact(str(exc))) from None
        finally:
            client.close()

    def read_back(self, rows: list[dict[str, Any]], context: dict[str, Any]) -> list[dict[str, Any]]:
        kind = self.options.value.type
        client = self._client()
        try:
            pipe = client.pipeline(transaction=False)
            keys = [context.get("prefix", "") + self.options.key.render(
                {k: _text(row[k]).decode("utf-8", "surrogateescape") for k in self.options.key.columns})
                for row in rows]
            for key in keys:
                pipe.hgetall(key) if kind == "hash" else pipe.get(key)
            actual = pipe.execute()
        finally:
            client.close()
        if self.options.compression != "none" and kind != "hash":
            actual = [decode_value(value) for value in actual]
        mismatches: list[dict[str, Any]] = []
        for key, row, got in zip(keys, rows, actual):
            if kind == "hash":
                fields = self.options.value.fields or list(row)
                expected = {f: row[f] for f in fields if row[f] is not None}
                got = {k.decode(): v for k, v in got.items()}
                if not got:
                    mismatches.append({"key": key, "field": None, "expected": "present", "actual": "missing"})
                    continue
                for name in sorted(set(expected) | set(got)):
                    if name not in got or name not in expected or not _same(expected[name], got[name]):
                        mismatches.append({"key": key, "field": name, "expected": _show(expected.get(name)),
                                           "actual": _show(got.get(name))})
            elif got is None:
                mismatches.append({"key": key, "field": None, "expected": "present", "actual": "missing"})
            elif kind == "string":
                column = self.options.value.value_columns()[0]
                if not _same(row[column], got):
                    mismatches.append({"key": key, "field": column, "expected": _show(row[column]),
                                       "actual": _show(got)})
            else:
                document = json.loads(got)
                fields = self.options.value.fields or list(row)
                for name in sorted(set(fields) | set(document)):
                    if name not in document or name not in row or not _same_json(row[name], document[name]):
                        mismatches.append({"key": key, "field": name, "expected": _show(row.get(name)),
                                           "actual": _show(document.get(name))})
        return mismatches

    def _conn(self) -> Connection:
        return get_connection(self.options.connection)

    def _client(self):
        return redis_client(self._conn())


class _RedisWriter(BatchWriter):
    """Encodes each batch as one RESP buffer and keeps one batch of replies in flight."""

    def __init__(self, target: RedisTarget, context: dict[str, Any]):
        self.target = target
        self.context = context
        self.options = target.options
        conn = target._conn()
        self.redact = conn.redact
        try:
            self.client = redis_client(conn)
            self.connection = self.client.connection_pool.get_connection()
            self.connection.connect()
        except Exception as exc:
            raise _redis_error(exc, conn.safe_address(), self.redact(str(exc))) from None
        self.pipe = resp.RespPipe(self.connection._sock)
        self.fields: list[str] | None = None

    def write(self, batch: pa.RecordBatch) -> list[tuple[int, str]]:
        if self.fields is None:
            self.fields = self.target.value_fields(batch.schema)
        keys = _keys(self.options.key, batch, self.context)
        values = [value_text.as_text(batch.column(name)) for name in self.fields]
        rejected, good = self._reject(batch, keys, values)
        if good is not None:
            keys = keys.filter(good)
            values = [v.filter(good) for v in values]
            batch = batch.filter(good)
        if len(keys) == 0:
            return rejected
        payload, replies = self._encode(batch, keys, values)
        try:
            self.pipe.send(payload, replies, max_in_flight=replies)
        except (OSError, ConnectionError) as exc:
            raise TransientError(f"Redis write failed: {self.redact(str(exc))}") from None
        return rejected

    def _reject(self, batch, keys, values):
        """Rows that cannot be written, with the reason; and the mask of the good ones."""
        bad_key = pc.is_null(keys)
        kind = self.options.value.type
        if kind == "hash":
            all_null = None
            for value in values:
                nulls = pc.is_null(value)
                all_null = nulls if all_null is None else pc.and_(all_null, nulls)
            bad_value = all_null
            value_reason = "all hash fields are NULL; Redis cannot store an empty hash"
        elif kind == "string":
            bad_value = pc.is_null(values[0])
            value_reason = f"value column {self.fields[0]!r} is NULL"
        else:
            bad_value = pa.array([False] * len(keys))
        bad = pc.or_(bad_key, bad_value)
        if not pc.any(bad).as_py():
            return [], None
        rejected = []
        key_null = bad_key.to_pylist()
        for index in pc.indices_nonzero(bad).to_pylist():
            if key_null[index]:
                nulls = [c for c in self.options.key.columns if batch.column(c)[index].as_py() is None]
                rejected.append((index, f"key column {nulls[0]!r} is NULL"))
            else:
                rejected.append((index, value_reason))
        return rejected, pc.invert(bad)

    def _encode(self, batch, keys, values) -> tuple[bytes, int]:
        key_bulk = resp.bulk(keys)
        rows = len(keys)
        ttl = b"*3\r\n$7\r\nPEXPIRE\r\n" if self.ttl_ms else None
        kind = self.options.value.type
        if kind == "hash" and not any(v.null_count for v in values):
            # Fast path, the common case: every row sets every field; one kernel call per batch.
            parts = [resp.array_header_literal(2 + 2 * len(self.fields)) + b"$4\r\nHSET\r\n",
                     *resp.bulk_parts(keys)]
            for name, value in zip(self.fields, values):
                parts += [resp.bulk_literal(name), *resp.bulk_parts(value)]
            parts = [resp.join(parts, null_as_empty=False)]
            replies = rows
        elif kind == "hash":
            field_parts, delete_parts, present = [], [], None
            for name, value in zip(self.fields, values):
                name_bulk = resp.bulk_literal(name)
                valid = pc.is_valid(value)
                field_parts.append(pc.fill_null(pc.binary_join_element_wise(name_bulk, resp.bulk(value), b""), b""))
                delete_parts.append(pc.if_else(valid, b"", name_bulk))
                count = pc.cast(valid, pa.int32())
                present = count if present is None else pc.add(present, count)
            missing = pc.subtract(len(self.fields), present)
            hset = resp.join([resp.array_header(pc.add(pc.multiply(present, 2), 2)), b"$4\r\nHSET\r\n",
                              key_bulk, *field_parts])
            has_nulls = pc.greater(missing, 0)
            hdel = pc.if_else(has_nulls, resp.join([resp.array_header(pc.add(missing, 2)),
                                                    b"$4\r\nHDEL\r\n", key_bulk, *delete_parts]), b"")
            parts = [hset, hdel]
            replies = rows + pc.sum(has_nulls.cast(pa.int64())).as_py()
        else:
            value = values[0] if kind == "string" else _json_objects(batch, self.fields)
            if self.options.compression != "none":
                self.value_bytes += total_bytes(value)
                value = compress_array(value, self.options.compression)
                self.stored_bytes += total_bytes(value)
            if self.ttl_ms:
                parts = [b"*5\r\n$3\r\nSET\r\n", key_bulk, resp.bulk(value),
                         b"$2\r\nPX\r\n" + resp.bulk_literal(str(self.ttl_ms))]
            else:
                parts = [b"*3\r\n$3\r\nSET\r\n", key_bulk, resp.bulk(value)]
            parts = [resp.join(parts)]
            replies = rows
            ttl = None
        if ttl:
            parts.append(resp.join([ttl, key_bulk, resp.bulk_literal(str(self.ttl_ms))]))
            replies += rows
        return value_text.concat(resp.join(parts)), replies

    @property
    def ttl_ms(self):
        return self.target.ttl_ms

    def flush(self) -> None:
        try:
            self.pipe.drain()
        except resp.RedisReplyError as exc:
            raise TerminalError(f"Redis rejected a write: {exc}") from None
        except (OSError, ConnectionError) as exc:
            raise TransientError(f"Redis write failed: {self.redact(str(exc))}") from None

    def close(self) -> None:
        try:
            self.connection.disconnect()
        finally:
            self.client.close()


def _keys(template, batch: pa.RecordBatch, context: dict[str, Any]) -> pa.Array:
    keys = value_text.render(template, batch)
    prefix = context.get("prefix")
    return pc.binary_join_element_wise(prefix.encode(), keys, b"") if prefix else keys


def _json_objects(batch: pa.RecordBatch, fields: list[str]) -> pa.Array:
    """One JSON object per row, built column-wise; NULL becomes null."""
    parts: list = [b"{"]
    for position, name in enumerate(fields):
        parts.append((b"," if position else b"") + json.dumps(name).encode() + b":")
        parts.append(pc.fill_null(_json_values(batch.column(name)), b"null"))
    parts.append(b"}")
    return pc.binary_join_element_wise(*parts, b"")


def _json_values(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return value_text.as_text(column)
    if pa.types.is_floating(kind):
        finite = pc.is_finite(column)
        return pc.if_else(finite, value_text.as_text(column), pa.scalar(None, pa.binary()))
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        encoded = [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()]
        return _quoted(pa.array(encoded, pa.string()))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _quoted(column.cast(pa.string()))
    return _quoted(value_text.as_text(column).cast(pa.string()))


def _quoted(text: pa.Array) -> pa.Array:
    """JSON string literals: escape backslash and quote in bulk, control characters row by row."""
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    control = pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f]"), False)
    if pc.any(control).as_py():
        rows = pc.indices_nonzero(control)
        fixed = [json.dumps(v, ensure_ascii=False)[1:-1] for v in pc.take(text, rows).to_pylist()]
        escaped = pc.replace_with_mask(escaped, control, pa.array(fixed, pa.string()))
    return pc.binary_join_element_wise(b'"', escaped.cast(pa.binary()), b'"', b"")


def _same_json(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None or (isinstance(expected, float) and not math.isfinite(expected))
    if isinstance(expected, (bytes, bytearray)):
        return base64.b64encode(expected).decode() == actual
    if isinstance(expected, bool) or isinstance(expected, (int, float)) and not isinstance(expected, Decimal):
        return expected == actual
    return _text(expected).decode() == actual


def _redis_error(exc: Exception, address: str, text: str) -> Exception:
    if is_availability_failure(exc):
        return TransientError(f"Redis at {address} is unavailable: {text}")
    return TerminalError(f"Redis at {address} refused: {text}")

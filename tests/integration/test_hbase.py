"""MySQL -> HBase on the real MariaDB and the HBase Thrift emulator: every row key, cell, value and
timestamp compared with the rows, read back with happybase."""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
import time
import zlib
from datetime import datetime
from decimal import Decimal

import pytest

from accelsync import pipeline
from accelsync.errors import GateFailed
from accelsync.runs import RunDir
from accelsync.spec import parse_spec

pytestmark = pytest.mark.integration

PREFIX = "accelsync_test"
HBASE_PORT = int(os.environ.get("ACCELSYNC_HBASE_PORT") or 9090)

PROFILES = """
CREATE TABLE profiles (
  id BIGINT PRIMARY KEY, country CHAR(2), name VARCHAR(50), score DECIMAL(6,2), seen DATETIME(6),
  avatar BLOB, updated_at DATETIME NOT NULL
) DEFAULT CHARSET utf8mb4
"""
PROFILE_ROWS = [
    (1, "fr", "héllo wörld 😀", Decimal("12.50"), datetime(2024, 1, 2, 3, 4, 5, 123456), b"\x00\xffpng",
     datetime(2024, 1, 1, 0, 0, 1)),
    (2, "jp", "中文", Decimal("-0.05"), datetime(2024, 1, 2, 3, 4, 5), None, datetime(2024, 1, 1, 0, 0, 2)),
    (3, "br", None, None, None, b"", datetime(2024, 1, 1, 0, 0, 3)),
    (4, None, "no country", Decimal("1.00"), None, None, datetime(2024, 1, 1, 0, 0, 4)),  # dirty: key NULL
    (5, "de", "tab\there", Decimal("0.00"), None, None, datetime(2030, 6, 30, 23, 59, 59)),
]
CELLS = {"p:name": "name", "p:score": "score", "m:seen": "seen", "m:avatar": "avatar"}


def salted(key: str, buckets: int = 4) -> bytes:
    """The salt formula of the sink's docstring, written out again."""
    raw = key.encode()
    return f"{zlib.crc32(raw) % buckets:0{len(str(buckets - 1))}d}_".encode() + raw


def millis(value: datetime) -> int:
    return calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000


def text(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, datetime):
        fraction = f".{value.microsecond:06d}" if value.microsecond else ""
        return (value.strftime("%Y-%m-%d %H:%M:%S") + fraction).encode()
    return str(value).encode()


def profiles_spec(**target):
    return parse_spec({
        "name": "test_mysql_hbase",
        "source": {"type": "mysql", "connection": "test_mysql", "table": "profiles", "split_pk": "id"},
        "target": {"type": "hbase", "connection": "test_hbase", "table": "profiles",
                   "row_key": "{country}#{id}", "salt": {"buckets": 4}, "columns": CELLS,
                   "version_column": "updated_at", "create_table": True, **target},
        "speed": {"channels": 2},
        "error_limit": {"records": 1},
    })


@pytest.fixture()
def hbase(hbase_server, monkeypatch):
    """The `test_hbase` connection (the devstack emulator, tables under a test prefix) and a
    happybase connection to the same tables, with no test tables left over."""
    happybase = pytest.importorskip("happybase")
    monkeypatch.setenv("AIRFLOW_CONN_TEST_HBASE", f"hbase://127.0.0.1:{HBASE_PORT}?table_prefix={PREFIX}")
    connection = happybase.Connection("127.0.0.1", HBASE_PORT, table_prefix=PREFIX)
    for name in connection.tables():
        connection.delete_table(name, disable=True)
    yield connection
    connection.close()


@pytest.fixture()
def profiles(mysql):
    cursor = mysql.cursor()
    cursor.execute(PROFILES)
    cursor.executemany("INSERT INTO profiles VALUES (%s, %s, %s, %s, %s, %s, %s)", PROFILE_ROWS)
    return cursor


def stored(table) -> dict[bytes, dict[bytes, list[tuple[bytes, int]]]]:
    """Every cell of every row with all its versions: {row: {column: [(value, ts), ...]}}."""
    everything = {}
    for key, row in table.scan():
        everything[key] = {column: table.cells(key, column, versions=10, include_timestamp=True)
                           for column in row}
    return everything


def expected_cells(row: tuple, stamp_of=None) -> dict[bytes, list[tuple[bytes, int]]]:
    values = dict(zip(("id", "country", "name", "score", "seen", "avatar", "updated_at"), row))
    stamp = millis(values["updated_at"])
    return {cell.encode(): [(text(values[column]), stamp)] for cell, column in CELLS.items()
            if values[column] is not None}


def test_exact_cells_then_a_rerun_converges(spark, profiles, hbase, run_id):
    summary = pipeline.run(profiles_spec(), run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (5, 4, 1)
    assert summary["dirty_reasons"] == {"row key column 'country' is NULL": 1}
    assert set(hbase.table("profiles").families()) == {b"p", b"m"}
    first = stored(hbase.table("profiles"))
    assert first == {salted(f"{row[1]}#{row[0]}"): expected_cells(row) for row in PROFILE_ROWS if row[1]}
    assert b"2_fr#1" in first  # crc32(b"fr#1") % 4 == 2; one digit for 4 buckets

    # id 1: a value becomes NULL, another changes, with a newer version; id 5 untouched
    profiles.execute("UPDATE profiles SET name = NULL, score = 99.50, updated_at = '2024-03-01 10:00:00' WHERE id = 1")
    summary = pipeline.run(profiles_spec(), run_id + "b")

    assert summary["status"] == "published", summary["reason"]
    second = stored(hbase.table("profiles"))
    new = millis(datetime(2024, 3, 1, 10))
    old = millis(PROFILE_ROWS[0][6])
    assert second[salted("fr#1")] == {  # NULL deleted every version; the changed cell keeps its old one
        b"p:score": [(b"99.50", new), (b"12.50", old)],
        b"m:seen": [(b"2024-01-02 03:04:05.123456", new), (b"2024-01-02 03:04:05.123456", old)],
        b"m:avatar": [(b"\x00\xffpng", new), (b"\x00\xffpng", old)]}
    del first[salted("fr#1")], second[salted("fr#1")]
    assert second == first  # same cells, same single versions: a rerun rewrote them in place
    gate = {c["name"]: c for c in summary["gate"]["checks"]}
    assert gate["reconcile"]["passed"] and gate["readback"]["passed"], gate


def test_family_takes_every_non_key_column_with_server_timestamps(spark, profiles, hbase, run_id):
    profiles.execute("INSERT INTO profiles VALUES (6, NULL, NULL, NULL, NULL, NULL, '2024-01-01')")
    spec = parse_spec({
        "name": "test_mysql_hbase_family",
        "source": {"type": "mysql", "connection": "test_mysql", "table": "profiles",
                   "columns": ["id", "name", "score", "country"]},
        "target": {"type": "hbase", "connection": "test_hbase", "table": "by_id", "row_key": "user:{id}",
                   "family": "d", "create_table": True},
        "error_limit": {"records": 1},
    })
    before = int(time.time() * 1000)
    summary = pipeline.run(spec, run_id)
    after = int(time.time() * 1000)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (6, 5, 1)
    assert summary["dirty_reasons"] == {"every cell is NULL; HBase has no empty row (its cells were deleted)": 1}
    table = hbase.table("by_id")
    assert table.families()[b"d"]["max_versions"] == 3
    assert [key for key, _ in table.scan()] == [b"user:1", b"user:2", b"user:3", b"user:4", b"user:5"]
    assert table.row(b"user:2") == {b"d:name": "中文".encode(), b"d:score": b"-0.05", b"d:country": b"jp"}
    assert table.row(b"user:3") == {b"d:country": b"br"}
    assert table.row(b"user:4") == {b"d:name": b"no country", b"d:score": b"1.00"}
    stamps = {stamp for _, row in table.scan(include_timestamp=True) for _, stamp in row.values()}
    assert all(before <= stamp <= after for stamp in stamps), (before, stamps, after)


def test_unknown_table_without_create_table_fails_clearly(spark, profiles, hbase, run_id):
    spec = profiles_spec(create_table=False)
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert summary["reason"] == ("target.table: HBase table 'profiles' does not exist "
                                 "(set create_table: true to create it)")
    assert not RunDir(spec.name, run_id).exists("published.json")
    assert hbase.tables() == []


def test_gate_readback_catches_a_tampered_cell_and_publish_is_refused(spark, profiles, hbase, run_id):
    spec = profiles_spec()
    pipeline.stage_sync(spec, run_id)
    table = hbase.table("profiles")
    table.put(salted("jp#2"), {b"p:name": b"tampered"})  # a newer version, as a stray writer would
    table.delete(salted("br#3"))

    with pytest.raises(GateFailed) as failure:
        pipeline.stage_gate(spec, run_id)

    message = str(failure.value)
    assert "reconcile: target has 3 of 4 expected rows" in message
    assert f"{salted('jp#2').decode()} field p:name: expected '中文', got 'tampered'" in message
    assert f"{salted('br#3').decode()}: expected 'present', got 'missing'" in message
    with pytest.raises(Exception, match="no passing gate"):
        pipeline.stage_publish(spec, run_id)
    assert not RunDir(spec.name, run_id).exists("published.json")


# -- the writer alone (no Spark) ------------------------------------------------------------------

def test_salt_formula_and_the_compact_protocol_path_write_the_same_cells(services, hbase, monkeypatch):
    """The column-wise binary encoder and happybase's Table.batch (used for protocol: compact)
    leave identical cells, on a second emulator serving the compact protocol."""
    import socket

    import happybase
    import pyarrow as pa

    from accelsync.devstack.hbase import EMULATOR_MODULE
    from accelsync.registry import sink_class

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        compact_port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", EMULATOR_MODULE, "--port", str(compact_port), "--compact"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        batch = pa.RecordBatch.from_pydict({
            "id": pa.array([1, 2, 3, 4], pa.int64()), "name": ["ä", None, "", "x"],
            "price": pa.array([Decimal("1.50"), None, None, Decimal("-2.00")], pa.decimal128(6, 2)),
            "raw": pa.array([b"\x00\x01", None, b"", None], pa.binary()),
            "at": pa.array([datetime(2024, 5, 1), datetime(2024, 5, 1), datetime(2024, 5, 2, 0, 0, 0, 1999),
                            datetime(2024, 5, 1)], pa.timestamp("us"))})
        monkeypatch.setenv("AIRFLOW_CONN_TEST_HBASE_COMPACT", f"hbase://127.0.0.1:{compact_port}?protocol=compact")
        results = []
        for connection in ("test_hbase", "test_hbase_compact"):
            spec = parse_spec({"name": "writer_parity", "source": {"type": "mysql", "table": "t"},
                               "target": {"type": "hbase", "connection": connection, "table": "parity",
                                          "row_key": "k{id}", "salt": {"buckets": 16}, "family": "f",
                                          "version_column": "at", "create_table": True, "batch_size": 2}})
            sink = sink_class("hbase")(spec)
            for _ in range(50):  # the compact server may still be starting
                try:
                    sink.prepare("parity")
                    break
                except Exception:
                    time.sleep(0.2)
            writer = sink.open_writer({})
            assert writer.write(batch) == []
            writer.flush()
            writer.close()
            client = happybase.Connection("127.0.0.1", HBASE_PORT if connection == "test_hbase" else compact_port,
                                          protocol="binary" if connection == "test_hbase" else "compact",
                                          table_prefix=PREFIX if connection == "test_hbase" else None)
            results.append(stored(client.table("parity")))
            client.close()
    finally:
        server.terminate()
        server.wait(10)
    assert results[0] == results[1]
    assert set(results[0]) == {salted(f"k{i}", 16) for i in (1, 2, 3, 4)}
    assert salted("k1", 16) == f"{zlib.crc32(b'k1') % 16:02d}_k1".encode()
    assert results[0][salted("k3", 16)] == {b"f:name": [(b"", 1714608000001)], b"f:raw": [(b"", 1714608000001)],
                                            b"f:at": [(b"2024-05-02 00:00:00.001999", 1714608000001)]}

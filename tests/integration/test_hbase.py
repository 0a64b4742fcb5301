"""MySQL -> HBase on the real MariaDB and the devstack's Apache HBase (through its Thrift server):
every row key, cell, value, version and timestamp compared with the rows, read back through
HBase's own REST server (`hbase_rest`), not through accelsync's Thrift client stack."""

from __future__ import annotations

import calendar
import os
import time
import zlib
from datetime import datetime
from decimal import Decimal

import pytest
from ports import free_port

from accelsync import pipeline
from accelsync.errors import GateFailed, TerminalError
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
    """The salt formula of the target's docstring, written out again."""
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
    """The `test_hbase` connection (the devstack HBase, tables under a test prefix) and a
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


def expected_cells(row: tuple) -> dict[bytes, list[tuple[bytes, int]]]:
    values = dict(zip(("id", "country", "name", "score", "seen", "avatar", "updated_at"), row))
    stamp = millis(values["updated_at"])
    return {cell.encode(): [(text(values[column]), stamp)] for cell, column in CELLS.items()
            if values[column] is not None}


def values(row: dict[bytes, list[tuple[bytes, int]]]) -> dict[bytes, bytes]:
    """The newest value of each cell of a row as `RestGateway.cells` returns it."""
    return {column: versions[0][0] for column, versions in row.items()}


def writer_run(spec_target: dict, batch, connection: str = "test_hbase") -> list[tuple[int, str]]:
    """Prepare the target and write one batch with it, as a write task does (no Spark)."""
    from accelsync.registry import target_class

    spec = parse_spec({"name": "writer", "source": {"type": "mysql", "table": "t"},
                       "target": {"type": "hbase", "connection": connection, **spec_target}})
    target = target_class("hbase")(spec)
    target.prepare("writer")
    writer = target.open_writer({})
    try:
        rejected = writer.write(batch)
        writer.flush()
    finally:
        writer.close()
    return rejected


def prepared_writer(table: str):
    """A write task's writer of table `table` (key `k{id}`, family `f`), the table prepared."""
    from accelsync.registry import target_class

    spec = parse_spec({"name": "writer", "source": {"type": "mysql", "table": "t"},
                       "target": {"type": "hbase", "connection": "test_hbase", "table": table,
                                  "row_key": "k{id}", "family": "f", "create_table": True}})
    target = target_class("hbase")(spec)
    target.prepare("writer")
    return target.open_writer({})


def test_devstack_runs_apache_hbase(hbase_server, hbase_rest):
    from accelsync.dev.devstack.hbase import VERSION

    assert hbase_server.up and hbase_server.version == f"Apache HBase {VERSION}", hbase_server
    assert hbase_rest.version() == VERSION  # the master's answer, through the REST gateway


def test_exact_cells_then_a_rerun_converges(spark, profiles, hbase, hbase_rest, run_id):
    summary = pipeline.run(profiles_spec(), run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (5, 4, 1)
    assert summary["dirty_reasons"] == {"row key column 'country' is NULL": 1}
    schema = hbase_rest.schema(f"{PREFIX}_profiles")  # created with HBase's defaults but 3 versions
    assert {family: (attrs["VERSIONS"], attrs["BLOCKCACHE"], attrs["BLOOMFILTER"])
            for family, attrs in schema.items()} == {"p": ("3", "true", "ROW"), "m": ("3", "true", "ROW")}
    first = hbase_rest.cells(f"{PREFIX}_profiles")
    assert first == {salted(f"{row[1]}#{row[0]}"): expected_cells(row) for row in PROFILE_ROWS if row[1]}
    assert b"2_fr#1" in first  # crc32(b"fr#1") % 4 == 2; one digit for 4 buckets

    # id 1: a value becomes NULL, another changes, with a newer version; id 5 untouched
    profiles.execute("UPDATE profiles SET name = NULL, score = 99.50, updated_at = '2024-03-01 10:00:00' WHERE id = 1")
    summary = pipeline.run(profiles_spec(), run_id + "b")

    assert summary["status"] == "published", summary["reason"]
    second = hbase_rest.cells(f"{PREFIX}_profiles")
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


def test_family_takes_every_non_key_column_with_server_timestamps(spark, profiles, hbase, hbase_rest, run_id):
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
    assert hbase_rest.schema(f"{PREFIX}_by_id")["d"]["VERSIONS"] == "3"
    rows = hbase_rest.cells(f"{PREFIX}_by_id")
    assert list(rows) == [b"user:1", b"user:2", b"user:3", b"user:4", b"user:5"]  # HBase's byte order
    assert values(rows[b"user:2"]) == {b"d:name": "中文".encode(), b"d:score": b"-0.05", b"d:country": b"jp"}
    assert values(rows[b"user:3"]) == {b"d:country": b"br"}
    assert values(rows[b"user:4"]) == {b"d:name": b"no country", b"d:score": b"1.00"}
    stamps = {stamp for row in rows.values() for versions in row.values() for _, stamp in versions}
    assert all(before <= stamp <= after for stamp in stamps), (before, stamps, after)
    assert all(len(versions) == 1 for row in rows.values() for versions in row.values())


def test_unknown_table_without_create_table_fails_clearly(spark, profiles, hbase, hbase_rest, run_id):
    spec = profiles_spec(create_table=False)
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert summary["reason"] == ("target.table: HBase table 'profiles' does not exist "
                                 "(set create_table: true to create it)")
    assert not RunDir(spec.name, run_id).exists("published.json")
    assert [t for t in hbase_rest.tables() if t.startswith(PREFIX)] == []


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

def parity_batch():
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({
        "id": pa.array([1, 2, 3, 4], pa.int64()), "name": ["ä", None, "", "x"],
        "price": pa.array([Decimal("1.50"), None, None, Decimal("-2.00")], pa.decimal128(6, 2)),
        "raw": pa.array([b"\x00\x01", None, b"", None], pa.binary()),
        "at": pa.array([datetime(2024, 5, 1), datetime(2024, 5, 1), datetime(2024, 5, 2, 0, 0, 0, 1999),
                        datetime(2024, 5, 1)], pa.timestamp("us"))})


def test_salt_formula_and_the_compact_protocol_path_write_the_same_cells(services, hbase, hbase_rest,
                                                                         monkeypatch, tmp_path):
    """The column-wise binary encoder and happybase's Table.batch (used for protocol: compact)
    leave identical cells, the second through HBase's Thrift server started with `-c`."""
    from hbase_gateways import ThriftGateway

    compact = ThriftGateway(tmp_path, compact=True)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_TEST_HBASE_COMPACT",
                           f"hbase://127.0.0.1:{compact.port}?protocol=compact&table_prefix={PREFIX}_compact")
        target = {"row_key": "k{id}", "salt": {"buckets": 16}, "family": "f", "version_column": "at",
                  "create_table": True, "batch_size": 2}
        assert writer_run({"table": "parity", **target}, parity_batch()) == []
        assert writer_run({"table": "parity", **target}, parity_batch(), "test_hbase_compact") == []
    finally:
        compact.stop()
    binary, compacted = hbase_rest.cells(f"{PREFIX}_parity"), hbase_rest.cells(f"{PREFIX}_compact_parity")
    assert binary == compacted
    assert set(binary) == {salted(f"k{i}", 16) for i in (1, 2, 3, 4)}
    assert salted("k1", 16) == f"{zlib.crc32(b'k1') % 16:02d}_k1".encode()
    assert binary[salted("k3", 16)] == {b"f:name": [(b"", 1714608000001)], b"f:raw": [(b"", 1714608000001)],
                                        b"f:at": [(b"2024-05-02 00:00:00.001999", 1714608000001)]}


def test_rows_hbase_cannot_store_are_dirty_and_the_rest_is_written(services, hbase, hbase_rest):
    """An empty row key (HBase refuses it) and the version 2^63-1 (HBase's "now": the server would
    stamp the cells with its clock) are dirty rows, not a failed run."""
    import pyarrow as pa

    batch = pa.RecordBatch.from_pydict({"name": ["a", "", "b", "c"], "v": ["1", "2", "3", "4"],
                                        "ver": pa.array([5, 6, 2**63 - 1, 2**63 - 2], pa.int64())})
    rejected = writer_run({"table": "odd", "row_key": "{name}", "family": "f", "version_column": "ver",
                           "create_table": True}, batch)

    assert rejected == [(1, "row key is empty (HBase rows need a key of at least one byte)"),
                        (2, "version column 'ver' is 9223372036854775807, which HBase reads as 'now' "
                            "(the server's clock would stamp the cells)")]
    assert hbase_rest.cells(f"{PREFIX}_odd") == {
        b"a": {b"f:v": [(b"1", 5)], b"f:ver": [(b"5", 5)]},
        b"c": {b"f:v": [(b"4", 2**63 - 2)], b"f:ver": [(b"9223372036854775806", 2**63 - 2)]}}


def test_a_table_dropped_during_the_write_fails_at_once(services, hbase):
    """HBase answers a write to a missing table with a failed mutation, not TableNotFoundException:
    the target asks the table's state, and fails terminally instead of retrying."""
    writer = prepared_writer("dropped")
    hbase.delete_table("dropped", disable=True)
    try:
        with pytest.raises(TerminalError) as failure:
            writer.write(parity_batch())
            writer.flush()
    finally:
        writer.close()
    assert str(failure.value) == "writing: target.table: HBase table 'dropped' does not exist"


def test_a_source_quiet_for_longer_than_the_thrift_servers_idle_limit_loses_nothing(services, hbase, hbase_rest):
    """HBase's Thrift server drops a connection idle for 60 s (hbase.thrift.server.socket.read.
    timeout); a write task whose source gives nothing for longer (a quiet topic, a slow query)
    still writes its next batch, and the batch before it stays written."""
    import time

    import pyarrow as pa

    writer = prepared_writer("quiet")
    try:
        assert writer.write(pa.RecordBatch.from_pydict({"id": [1, 2], "v": ["a", "b"]})) == []
        time.sleep(65)
        assert writer.write(pa.RecordBatch.from_pydict({"id": [3], "v": ["c"]})) == []
        writer.flush()
    finally:
        writer.close()
    assert {key: values(row) for key, row in hbase_rest.cells(f"{PREFIX}_quiet").items()} == {
        b"k1": {b"f:v": b"a"}, b"k2": {b"f:v": b"b"}, b"k3": {b"f:v": b"c"}}  # the key column is in the key


def test_thrift_server_errors_read_as_hbase_states_them(services, hbase):
    """HBase's errors arrive with Java stack traces and package names: the first line is kept,
    readable; an internal error of the Thrift server (whose message says nothing) says where to look."""
    import Hbase_thrift

    from accelsync.connections import get_connection
    from accelsync.targets.hbase.client import hbase_error

    conn = get_connection("test_hbase")
    client = hbase.client
    hbase.create_table("errors", {"f": {}})
    failures = []
    for call in (lambda: client.getRows(f"{PREFIX}_nope".encode(), [b"r"], {}),
                 lambda: client.getRowsWithColumns(f"{PREFIX}_errors".encode(), [b"r"], [b"nope"], {}),
                 lambda: client.mutateRows(f"{PREFIX}_errors".encode(), [Hbase_thrift.BatchMutation(
                     row=b"", mutations=[Hbase_thrift.Mutation(column=b"f:q", value=b"v")])], {})):
        with pytest.raises(Exception) as caught:
            call()
        error = hbase_error(caught.value, conn, "reading")
        failures.append((type(error).__name__, str(error)))
    assert failures[0] == ("TerminalError", f"reading: HBase failed: TableNotFoundException: {PREFIX}_nope")
    kind, message = failures[1]
    assert kind == "TerminalError" and message.startswith(
        "reading: HBase failed: NoSuchColumnFamilyException: Column family nope does not exist in region "
        f"{PREFIX}_errors,,"), message
    assert message.endswith(f" in table '{PREFIX}_errors'"), message  # the table descriptor is cut off
    assert failures[2] == ("TerminalError", "reading: HBase Thrift server error: Internal error processing "
                                            "mutateRows (the cause is in the HBase Thrift server's log)")


# -- the devstack service -------------------------------------------------------------------------

def test_a_server_that_fails_to_start_fails_with_its_own_log(services, tmp_path, monkeypatch):
    """A second HBase whose master JVM cannot start: `up` fails at once with the master's log,
    and the supervisor stopped the Thrift server it had started beside it."""
    from accelsync.dev.devstack.base import start_timeout
    from accelsync.dev.devstack.hbase import Hbase
    from accelsync.dev.devstack.process import DevstackError, pid_alive

    monkeypatch.setenv("ACCELSYNC_HBASE_HEAP", "lots")
    service = Hbase(port=free_port(), home=tmp_path)
    started = time.monotonic()
    with pytest.raises(DevstackError) as failure:
        service.up()

    assert time.monotonic() - started < 60
    message = str(failure.value)
    assert message.startswith(f"HBase did not become healthy on 127.0.0.1:{service.port} within {start_timeout():.0f}s "
                              f"(it exited with status 1); {tmp_path / 'hbase' / 'hbase.log'} ends:\n"), message
    assert "master (pid " in message and f"exited with status 1; {tmp_path / 'hbase' / 'master.log'} ends:" in message
    assert "Invalid maximum heap size: -Xmxlots" in message
    log = (tmp_path / "hbase" / "hbase.log").read_text()
    thrift = int(log.split("started thrift (pid ")[1].split(")")[0])
    assert f"stopping thrift (pid {thrift})" in log and not pid_alive(thrift)
    assert service.our_pid() is None


def test_tables_survive_down_and_up(hbase_server, hbase, hbase_rest):
    """Last in this file: restarts the session's HBase."""
    from accelsync.dev import devstack

    hbase.create_table("kept", {"cf": {"max_versions": 2}})
    table = hbase.table("kept")
    table.put(b"r", {b"cf:q": b"v1"}, timestamp=1)
    table.put(b"r", {b"cf:q": b"v2"}, timestamp=2)
    [service] = devstack.services(["hbase"])
    pid = service.our_pid()

    assert devstack.down(["hbase"]) == [f"stopped hbase on 127.0.0.1:{HBASE_PORT} (pid {pid})"]
    [status] = devstack.up(["hbase"])

    assert status.detail.startswith("started by devstack") and status.version == hbase_server.version
    assert hbase_rest.cells(f"{PREFIX}_kept") == {b"r": {b"cf:q": [(b"v2", 2), (b"v1", 1)]}}
    assert hbase_rest.schema(f"{PREFIX}_kept")["cf"]["VERSIONS"] == "2"


def test_reconcile_counts_the_same_keys_by_scan_and_by_gets(services, hbase, monkeypatch):
    """The gate's count of present row keys: key-only scans of sorted key ranges, falling back to
    multi-gets where a range holds many rows of others, must count exactly what gets count: keys
    with a cell in the target's family, a key the snapshot holds twice counted twice."""
    import pyarrow as pa

    from accelsync.registry import target_class
    from accelsync.targets.hbase import presence

    hbase.create_table("presence", {"f": {}, "other": {}})
    table = hbase.table("presence")
    with table.batch(batch_size=2000) as batch:
        for i in range(1000):
            if not 10 <= i < 20:  # k0010..k0019 are missing
                batch.put(f"k{i:04d}".encode(), {b"f:v": b"1"})
        for j in range(3000):  # rows of others inside one segment's range: that segment uses gets
            batch.put(f"k0500x{j:04d}".encode(), {b"f:v": b"1"})
        batch.put(b"k2000", {b"other:v": b"1"})  # a row, but not in the target's family
    spec = parse_spec({"name": "presence", "source": {"type": "mysql", "table": "t"},
                       "target": {"type": "hbase", "connection": "test_hbase", "table": "presence",
                                  "row_key": "k{id}", "family": "f"}})
    target = target_class("hbase")(spec)
    ids = [f"{i:04d}" for i in range(1000)] + ["0001", "2000", "9999"]
    snapshot = [pa.RecordBatch.from_pydict({"id": ids[start:start + 100]}) for start in range(0, len(ids), 100)]

    gets = []
    original_get = presence._get
    monkeypatch.setattr(presence, "_get", lambda *args: gets.append(1) or original_get(*args))
    monkeypatch.setattr(presence, "SEGMENT_KEYS", 50)
    by_scan = target.count_present_all(lambda: iter(snapshot), {})
    by_gets = sum(target.count_present(batch, {}) for batch in snapshot)

    assert by_scan == by_gets == 1000 - 10 + 1  # missing ten, k0001 twice, k2000 and k9999 absent
    assert len(gets) == 1  # only the segment around k0500 met the 3,000 other rows

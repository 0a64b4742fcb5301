"""The HBase Thrift emulator driven by happybase's documented usage, on a private port and folder.

Each behaviour is what HBase 2's Thrift server does, including how it fails, because accelsync
and its users talk to the emulator with the real client, unchanged.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest
from ports import free_port

pytestmark = pytest.mark.integration

happybase = pytest.importorskip("happybase")
import Hbase_thrift  # noqa: E402  (loaded by happybase from its Hbase.thrift)

from accelsync.devstack.hbase import HbaseEmulator  # noqa: E402




@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """An emulator started through its devstack Service, in a temporary folder."""
    service = HbaseEmulator(port=free_port(), home=tmp_path_factory.mktemp("devstack"))
    status = service.up()
    assert status.up and status.started_by_us, status
    yield service
    service.down()


@pytest.fixture()
def connection(emulator):
    connection = happybase.Connection("127.0.0.1", emulator.port)
    for name in connection.tables():
        connection.delete_table(name, disable=True)
    yield connection
    connection.close()


@pytest.fixture()
def table(connection):
    connection.create_table("users", {"info": dict(max_versions=3), "stats": dict(max_versions=1)})
    return connection.table("users")


def now_ms() -> int:
    return int(time.time() * 1000)


# -- tables ---------------------------------------------------------------------------------------

def test_create_list_describe_disable_and_delete_tables(connection):
    connection.create_table("mytable", {"cf1": dict(max_versions=10), "cf2": dict(max_versions=1,
                                                                                  block_cache_enabled=False),
                                        "cf3": dict()})
    assert connection.tables() == [b"mytable"]
    families = connection.table("mytable").families()
    assert set(families) == {b"cf1", b"cf2", b"cf3"}
    assert families[b"cf1"]["max_versions"] == 10 and families[b"cf3"]["max_versions"] == 3
    assert families[b"cf1"]["name"] == b"cf1:"
    assert [r["start_key"] for r in connection.table("mytable").regions()] == [b""]
    assert connection.is_table_enabled("mytable")

    connection.disable_table("mytable")
    assert not connection.is_table_enabled("mytable")
    with pytest.raises(Hbase_thrift.IOError, match="TableNotEnabledException: mytable is disabled"):
        connection.table("mytable").row(b"r")
    connection.enable_table("mytable")
    with pytest.raises(Hbase_thrift.IOError, match="TableNotDisabledException: mytable"):
        connection.delete_table("mytable")  # HBase deletes disabled tables only
    connection.delete_table("mytable", disable=True)
    assert connection.tables() == []
    assert connection.table("mytable").regions() == []


def test_table_prefix_namespaces_tables(emulator, connection):
    prefixed = happybase.Connection("127.0.0.1", emulator.port, table_prefix="myproject")
    prefixed.create_table("XYZ", {"cf": {}})
    assert connection.tables() == [b"myproject_XYZ"]
    assert prefixed.tables() == [b"XYZ"]
    prefixed.table("XYZ").put(b"k", {b"cf:q": b"v"})
    assert connection.table("myproject_XYZ").row(b"k") == {b"cf:q": b"v"}
    prefixed.close()


# -- put, row, rows -------------------------------------------------------------------------------

def test_put_row_and_rows(table):
    table.put(b"row-key", {b"info:qual1": b"value1", b"info:qual2": b"value2", b"stats:n": b"1"})
    table.put(b"other", {b"info:qual1": "ünïcode".encode()})

    assert table.row(b"row-key") == {b"info:qual1": b"value1", b"info:qual2": b"value2", b"stats:n": b"1"}
    assert table.row(b"row-key", columns=[b"info:qual1", b"stats"]) == {b"info:qual1": b"value1",
                                                                        b"stats:n": b"1"}
    assert table.row(b"row-key", columns=[b"info"]) == {b"info:qual1": b"value1", b"info:qual2": b"value2"}
    assert table.row(b"missing") == {}
    value, stamp = table.row(b"row-key", include_timestamp=True)[b"info:qual1"]
    assert value == b"value1" and abs(stamp - now_ms()) < 60_000
    assert table.rows([b"row-key", b"missing", b"other"], columns=[b"info:qual1"]) == [
        (b"row-key", {b"info:qual1": b"value1"}), (b"other", {b"info:qual1": "ünïcode".encode()})]
    assert dict(table.rows([b"other"])) == {b"other": {b"info:qual1": "ünïcode".encode()}}


def test_batch_sends_on_exit_and_by_size(table):
    with table.batch() as batch:
        batch.put(b"row1", {b"info:a": b"1"})
        batch.put(b"row2", {b"info:a": b"2"})
        batch.delete(b"row1", columns=[b"info:a"])  # same call: HBase applies puts, then deletes
        assert table.row(b"row2") == {}  # nothing sent before the block ends
    assert table.row(b"row1") == {} and table.row(b"row2") == {b"info:a": b"2"}

    batch = table.batch(batch_size=2)
    batch.put(b"b1", {b"info:a": b"x"})
    assert table.row(b"b1") == {}
    batch.put(b"b2", {b"info:a": b"y"})  # the second mutation reaches batch_size: sent
    assert table.row(b"b1") == {b"info:a": b"x"}
    batch.put(b"b3", {b"info:a": b"z"})
    batch.send()
    assert table.row(b"b3") == {b"info:a": b"z"}


def test_transaction_batch_sends_nothing_when_the_block_fails(table):
    with pytest.raises(ValueError):
        with table.batch(transaction=True) as batch:
            batch.put(b"tx", {b"info:a": b"1"})
            raise ValueError("abort")
    assert table.row(b"tx") == {}
    with pytest.raises(ValueError):
        with table.batch() as batch:  # without transaction, what was batched is sent anyway
            batch.put(b"no-tx", {b"info:a": b"1"})
            raise ValueError("abort")
    assert table.row(b"no-tx") == {b"info:a": b"1"}


# -- versions and timestamps ----------------------------------------------------------------------

def test_cells_keep_max_versions_newest_first(table):
    for stamp, value in ((100, b"v100"), (300, b"v300"), (200, b"v200"), (400, b"v400")):
        table.put(b"r", {b"info:q": value, b"stats:q": value}, timestamp=stamp)

    assert table.cells(b"r", b"info:q", include_timestamp=True) == [(b"v400", 400), (b"v300", 300), (b"v200", 200)]
    assert table.cells(b"r", b"stats:q") == [b"v400"]  # max_versions=1
    assert table.cells(b"r", b"info:q", versions=2) == [b"v400", b"v300"]
    assert table.cells(b"r", b"info:q", timestamp=300) == [b"v200"]  # upper bound is exclusive
    assert table.row(b"r", timestamp=350, include_timestamp=True) == {b"info:q": (b"v300", 300)}
    table.put(b"r", {b"info:q": b"again"}, timestamp=300)  # same coordinates: the value is replaced
    assert table.cells(b"r", b"info:q") == [b"v400", b"again", b"v200"]
    assert table.cells(b"r", b"info:nothing") == []


def test_timestamp_ranges_on_rows_and_scans(table):
    table.put(b"a", {b"info:q": b"old"}, timestamp=10)
    table.put(b"a", {b"info:q": b"new"}, timestamp=20)
    table.put(b"b", {b"info:q": b"late"}, timestamp=30)

    assert table.rows([b"a", b"b"], timestamp=25) == [(b"a", {b"info:q": b"new"})]
    assert list(table.scan(timestamp=20)) == [(b"a", {b"info:q": b"old"})]
    assert list(table.scan(include_timestamp=True)) == [(b"a", {b"info:q": (b"new", 20)}),
                                                        (b"b", {b"info:q": (b"late", 30)})]


# -- scans ----------------------------------------------------------------------------------------

@pytest.fixture()
def filled(table):
    keys = [b"a", b"a\x00", b"ab", b"b", b"row1", b"row2", b"row3", b"rox", b"\xff"]
    with table.batch() as batch:
        for index, key in enumerate(keys):
            batch.put(key, {b"info:n": b"%d" % index, b"info:key": key, b"stats:len": b"%d" % len(key)})
    return table, keys


def test_scan_returns_rows_in_byte_order(filled):
    table, keys = filled
    assert [key for key, _ in table.scan()] == sorted(keys)
    assert [key for key, _ in table.scan(reverse=True)] == sorted(keys, reverse=True)


def test_scan_ranges_prefix_columns_limit(filled):
    table, _ = filled
    assert [k for k, _ in table.scan(row_prefix=b"row")] == [b"row1", b"row2", b"row3"]
    assert [k for k, _ in table.scan(row_start=b"ab", row_stop=b"row2")] == [b"ab", b"b", b"row1"]
    assert [k for k, _ in table.scan(row_start=b"row2")] == [b"row2", b"row3", b"rox", b"\xff"]
    assert [k for k, _ in table.scan(row_stop=b"ab")] == [b"a", b"a\x00"]
    assert [k for k, _ in table.scan(row_start=b"row3", row_stop=b"row1", reverse=True)] == [b"row3", b"row2"]
    # happybase starts a reversed prefix scan at bytes_increment(prefix), which HBase includes
    assert [k for k, _ in table.scan(row_prefix=b"row", reverse=True)] == [b"rox", b"row3", b"row2", b"row1"]
    assert list(table.scan(row_prefix=b"row1", columns=[b"stats"])) == [(b"row1", {b"stats:len": b"4"})]
    assert list(table.scan(row_prefix=b"row1", columns=[b"info:n"])) == [(b"row1", {b"info:n": b"4"})]
    assert [k for k, _ in table.scan(limit=2)] == [b"a", b"a\x00"]
    assert [k for k, _ in table.scan(batch_size=1)] == [k for k, _ in table.scan(batch_size=1000)]
    assert len(list(table.scan(batch_size=2, limit=5))) == 5
    assert list(table.scan(row_prefix=b"nothing")) == []


def test_scan_batching_sorted_columns_and_filters(filled):
    table, _ = filled
    parts = list(table.scan(row_prefix=b"row1", scan_batching=2))
    assert parts == [(b"row1", {b"info:key": b"row1", b"info:n": b"4"}), (b"row1", {b"stats:len": b"4"})]
    [(_, ordered)] = table.scan(row_prefix=b"rox", sorted_columns=True)
    assert list(ordered) == [b"info:key", b"info:n", b"stats:len"]
    assert list(table.scan(filter="PrefixFilter('row') AND KeyOnlyFilter()", columns=[b"info:n"])) == [
        (b"row1", {b"info:n": b""}), (b"row2", {b"info:n": b""}), (b"row3", {b"info:n": b""})]
    assert list(table.scan(row_prefix=b"row1", filter="FirstKeyOnlyFilter()")) == [(b"row1", {b"info:key": b"row1"})]
    assert list(table.scan(row_prefix=b"row1", filter="ColumnPrefixFilter('le')")) == [(b"row1", {b"stats:len": b"4"})]
    with pytest.raises(Hbase_thrift.IOError, match="not supported"):
        list(table.scan(filter="SingleColumnValueFilter('info', 'n', =, 'binary:1')"))


def test_scanner_is_a_thrift_resource(emulator, filled):
    connection = happybase.Connection("127.0.0.1", emulator.port)
    client = connection.client
    scanner = client.scannerOpenWithPrefix(b"users", b"row", [b"info:n"], {})
    assert [r.row for r in client.scannerGetList(scanner, 2)] == [b"row1", b"row2"]
    assert [r.row for r in client.scannerGet(scanner)] == [b"row3"]
    assert client.scannerGet(scanner) == []
    client.scannerClose(scanner)
    with pytest.raises(Hbase_thrift.IllegalArgument, match="scanner ID is invalid"):
        client.scannerGetList(scanner, 1)
    connection.close()


# -- deletes --------------------------------------------------------------------------------------

def test_delete_row_and_columns(table):
    table.put(b"r", {b"info:a": b"1", b"info:b": b"2", b"stats:c": b"3"})
    table.put(b"s", {b"info:a": b"1"})
    table.delete(b"r", columns=[b"info:a"])
    assert table.row(b"r") == {b"info:b": b"2", b"stats:c": b"3"}
    table.delete(b"r", columns=[b"info"])  # a family: every column in it
    assert table.row(b"r") == {b"stats:c": b"3"}
    table.delete(b"r")
    assert table.row(b"r") == {}
    assert [k for k, _ in table.scan()] == [b"s"]


def test_delete_markers_hide_older_puts_until_major_compaction(connection, table):
    table.put(b"r", {b"info:q": b"v10"}, timestamp=10)
    table.put(b"r", {b"info:q": b"v30"}, timestamp=30)
    table.delete(b"r", columns=[b"info:q"], timestamp=20)  # versions up to 20
    assert table.cells(b"r", b"info:q") == [b"v30"]
    table.put(b"r", {b"info:q": b"v15"}, timestamp=15)  # at or below the marker: hidden, as in HBase
    assert table.cells(b"r", b"info:q") == [b"v30"]
    table.delete(b"r")  # now: everything so far
    table.put(b"r", {b"info:q": b"old"}, timestamp=now_ms() - 60_000)
    assert table.row(b"r") == {}
    connection.compact_table("users", major=True)  # drops the markers
    table.put(b"r", {b"info:q": b"old"}, timestamp=now_ms() - 60_000)
    assert table.row(b"r") == {b"info:q": b"old"}


def test_counters(table):
    assert table.counter_get(b"c", b"stats:hits") == 0
    assert table.counter_inc(b"c", b"stats:hits") == 1
    assert table.counter_inc(b"c", b"stats:hits", value=41) == 42
    assert table.counter_dec(b"c", b"stats:hits", value=2) == 40
    assert table.row(b"c") == {b"stats:hits": struct.pack(">q", 40)}
    table.counter_set(b"c", b"stats:hits", 7)
    assert table.counter_inc(b"c", b"stats:hits") == 8
    table.put(b"c", {b"stats:text": b"abc"})
    with pytest.raises(Hbase_thrift.IOError, match="Field is not a long"):
        table.counter_inc(b"c", b"stats:text")


# -- errors, as HBase reports them ----------------------------------------------------------------

def test_unknown_table_is_an_ioerror(connection):
    with pytest.raises(Hbase_thrift.IOError, match="TableNotFoundException: nope"):
        connection.table("nope").row(b"r")
    with pytest.raises(Hbase_thrift.IOError, match="TableNotFoundException: nope"):
        connection.table("nope").put(b"r", {b"cf:q": b"v"})
    with pytest.raises(Hbase_thrift.IOError, match="TableNotFoundException: nope"):
        list(connection.table("nope").scan())
    with pytest.raises(Hbase_thrift.IOError, match="TableNotFoundException"):
        connection.is_table_enabled("nope")
    with pytest.raises(Hbase_thrift.IOError, match="table does not exist"):
        connection.delete_table("nope")


def test_existing_table_is_already_exists(connection, table):
    with pytest.raises(Hbase_thrift.AlreadyExists, match="table name already in use"):
        connection.create_table("users", {"info": {}})


def test_unknown_family_is_an_ioerror_and_nothing_is_written(table):
    with pytest.raises(Hbase_thrift.IOError, match="NoSuchColumnFamilyException: Column family nope does not "
                                                   "exist in region users"):
        with table.batch() as batch:
            batch.put(b"ok", {b"info:a": b"1"})
            batch.put(b"bad", {b"nope:a": b"1"})
    assert table.row(b"ok") == {}
    with pytest.raises(Hbase_thrift.IOError, match="NoSuchColumnFamilyException"):
        table.row(b"ok", columns=[b"nope:a"])
    with pytest.raises(Hbase_thrift.IOError, match="NoSuchColumnFamilyException"):
        list(table.scan(columns=[b"nope"]))


def test_bad_arguments_are_illegal_argument(connection, table):
    with pytest.raises(Hbase_thrift.IllegalArgument, match="Row length is 0"):
        table.put(b"", {b"info:a": b"1"})
    with pytest.raises(Hbase_thrift.IllegalArgument, match="Timestamp cannot be negative"):
        table.put(b"r", {b"info:a": b"1"}, timestamp=-5)
    with pytest.raises(Hbase_thrift.IllegalArgument, match="Invalid famAndQf"):
        table.put(b"r", {b"info": b"1"})  # a put needs family:qualifier
    with pytest.raises(Hbase_thrift.IOError, match="at least one column family"):
        connection.client.createTable(b"empty", [])


# -- concurrency and persistence ------------------------------------------------------------------

def test_concurrent_connections(emulator, table):
    errors = []

    def writer(worker: int) -> None:
        try:
            own = happybase.Connection("127.0.0.1", emulator.port)
            with own.table("users").batch(batch_size=50) as batch:
                for index in range(300):
                    batch.put(b"w%d-%04d" % (worker, index), {b"info:v": b"%d" % index})
            assert len(list(own.table("users").scan(row_prefix=b"w%d-" % worker))) == 300
            own.close()
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(1 for _ in table.scan(batch_size=500)) == 1800


def test_tables_survive_a_restart(tmp_path):
    service = HbaseEmulator(port=free_port(), home=tmp_path)
    service.up()
    try:
        first = happybase.Connection("127.0.0.1", service.port)
        first.create_table("kept", {"cf": dict(max_versions=2)})
        first.table("kept").put(b"r", {b"cf:q": b"v1"}, timestamp=1)
        first.table("kept").put(b"r", {b"cf:q": b"v2"}, timestamp=2)
        first.table("kept").delete(b"r", columns=[b"cf:gone"])
        first.close()
        assert service.down().startswith("stopped hbase")
        assert (tmp_path / "hbase" / "data" / "hbase-emulator.pickle").exists()

        assert service.up().detail.startswith("started by devstack")
        again = happybase.Connection("127.0.0.1", service.port)
        assert again.tables() == [b"kept"]
        assert again.table("kept").families()[b"cf"]["max_versions"] == 2
        assert again.table("kept").cells(b"r", b"cf:q", include_timestamp=True) == [(b"v2", 2), (b"v1", 1)]
        again.close()
    finally:
        service.down()

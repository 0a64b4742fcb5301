"""The Thrift side of the HBase emulator: happybase's own Hbase.thrift IDL served by thriftpy2.

`Handler` implements the IDL's `Hbase` service on a `Store`; `serve` runs it as a threaded
server (one thread per connection; binary protocol over buffered transport, HBase's default
`-threadpool` mode and happybase's defaults, or `-compact` / `-framed`), with optional snapshots
to a folder.
"""

from __future__ import annotations

import functools
import gc
import itertools
import logging
import os
import pickle
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from accelsync.devstack.hbase_emulator import scan as scanning
from accelsync.devstack.hbase_emulator import store
from accelsync.devstack.hbase_emulator.store import LATEST_TIMESTAMP, Selection, Store, now_ms

log = logging.getLogger("accelsync.hbase_emulator")
SNAPSHOT = "hbase-emulator.pickle"
SCANNER_LEASE_SECONDS = 600  # an abandoned scanner is dropped after this long (HBase: 60 s lease)


def idl():
    """The thriftpy2 module of happybase's Hbase.thrift (happybase loads it as `Hbase_thrift`)."""
    import happybase  # noqa: F401  (importing it loads the IDL)

    return sys.modules["Hbase_thrift"]


def _translate(method):
    """Run under the store lock; turn the store's HBase errors into the IDL's exceptions."""
    @functools.wraps(method)
    def call(self, *args):
        try:
            with self.store.lock:
                return method(self, *args)
        except store.HBaseIOError as exc:
            raise self.idl.IOError(message=str(exc)) from None
        except store.IllegalArgument as exc:
            raise self.idl.IllegalArgument(message=str(exc)) from None
        except store.AlreadyExists as exc:
            raise self.idl.AlreadyExists(message=str(exc)) from None
    return call


class Handler:
    """The IDL's `Hbase` service; argument names and order follow Hbase.thrift."""

    def __init__(self, data: Store):
        self.store = data
        self.idl = idl()
        self.scanners: dict[int, scanning.Scanner] = {}
        self.scanner_ids = itertools.count(1)

    # -- conversions ----------------------------------------------------------------------------

    def _cells(self, versions: list[tuple[int, bytes]]) -> list:
        return [self.idl.TCell(value=value, timestamp=ts) for ts, value in versions]

    def _row_result(self, row: bytes, cells: list[tuple[bytes, tuple[int, bytes]]], sort: bool = False):
        TCell = self.idl.TCell
        if sort:
            return self.idl.TRowResult(row=row, sortedColumns=[
                self.idl.TColumn(columnName=column, cell=TCell(value=v, timestamp=ts)) for column, (ts, v) in cells])
        return self.idl.TRowResult(row=row, columns={column: TCell(value=v, timestamp=ts) for column, (ts, v) in cells})

    def _get_rows(self, name: bytes, rows: list[bytes], columns: Optional[list[bytes]], before: int) -> list:
        table = self.store.table(name)
        selection = table.selection(columns)
        results = []
        for row in rows:
            cells = table.cells(row, selection, before)
            if cells:
                results.append(self._row_result(row, [(c, versions[0]) for c, versions in cells]))
        return results

    def _get_cells(self, name: bytes, row: bytes, column: bytes, versions: int, before: int) -> list:
        table = self.store.table(name)
        cells = table.cells(row, table.selection([column]), before, versions=max(1, versions))
        return self._cells([version for _, found in cells for version in found])

    # -- table admin ----------------------------------------------------------------------------

    @_translate
    def enableTable(self, tableName):
        self.store.set_enabled(tableName, True)

    @_translate
    def disableTable(self, tableName):
        self.store.set_enabled(tableName, False)

    @_translate
    def isTableEnabled(self, tableName):
        return self.store.table(tableName, enabled=False).enabled

    @_translate
    def compact(self, tableNameOrRegionName):
        self.store.table(tableNameOrRegionName.partition(b",")[0], enabled=False)

    @_translate
    def majorCompact(self, tableNameOrRegionName):
        self.store.table(tableNameOrRegionName.partition(b",")[0], enabled=False).major_compact()
        self.store.changes += 1

    @_translate
    def getTableNames(self):
        return sorted(self.store.tables)

    @_translate
    def getColumnDescriptors(self, tableName):
        table = self.store.table(tableName, enabled=False)
        return {family + b":": self.idl.ColumnDescriptor(name=family + b":", **settings)
                for family, settings in sorted(table.families.items())}

    @_translate
    def getTableRegions(self, tableName):
        table = self.store.tables.get(tableName)
        if table is None:
            return []  # HBase answers an empty list for a table that does not exist
        return [self.idl.TRegionInfo(startKey=b"", endKey=b"", id=table.region_id,
                                     name=b"%s,,%d.emulator." % (table.name, table.region_id), version=1,
                                     serverName=b"localhost", port=16020)]

    @_translate
    def createTable(self, tableName, columnFamilies):
        descriptors = [{k: getattr(cd, k) for k in ("name", "maxVersions", "compression", "inMemory",
                                                      "bloomFilterType", "bloomFilterVectorSize",
                                                      "bloomFilterNbHashes", "blockCacheEnabled", "timeToLive")}
                       for cd in columnFamilies or []]
        self.store.create_table(tableName, descriptors)

    @_translate
    def deleteTable(self, tableName):
        self.store.delete_table(tableName)

    # -- reads ----------------------------------------------------------------------------------

    @_translate
    def get(self, tableName, row, column, attributes):
        return self._get_cells(tableName, row, column, 1, LATEST_TIMESTAMP)

    @_translate
    def getVer(self, tableName, row, column, numVersions, attributes):
        return self._get_cells(tableName, row, column, numVersions, LATEST_TIMESTAMP)

    @_translate
    def getVerTs(self, tableName, row, column, timestamp, numVersions, attributes):
        return self._get_cells(tableName, row, column, numVersions, timestamp)

    @_translate
    def getRow(self, tableName, row, attributes):
        return self._get_rows(tableName, [row], None, LATEST_TIMESTAMP)

    @_translate
    def getRowWithColumns(self, tableName, row, columns, attributes):
        return self._get_rows(tableName, [row], columns, LATEST_TIMESTAMP)

    @_translate
    def getRowTs(self, tableName, row, timestamp, attributes):
        return self._get_rows(tableName, [row], None, timestamp)

    @_translate
    def getRowWithColumnsTs(self, tableName, row, columns, timestamp, attributes):
        return self._get_rows(tableName, [row], columns, timestamp)

    @_translate
    def getRows(self, tableName, rows, attributes):
        return self._get_rows(tableName, rows or [], None, LATEST_TIMESTAMP)

    @_translate
    def getRowsWithColumns(self, tableName, rows, columns, attributes):
        return self._get_rows(tableName, rows or [], columns, LATEST_TIMESTAMP)

    @_translate
    def getRowsTs(self, tableName, rows, timestamp, attributes):
        return self._get_rows(tableName, rows or [], None, timestamp)

    @_translate
    def getRowsWithColumnsTs(self, tableName, rows, columns, timestamp, attributes):
        return self._get_rows(tableName, rows or [], columns, timestamp)

    @_translate
    def getRowOrBefore(self, tableName, row, family):
        raise store.HBaseIOError("org.apache.hadoop.hbase.DoNotRetryIOException: getRowOrBefore is not "
                                 "supported (removed in HBase 2); use a reversed scan")

    @_translate
    def getRegionInfo(self, row):
        name = row.partition(b",")[0]
        table = self.store.tables.get(name)
        if table is None:
            raise store.HBaseIOError(f"java.io.IOException: Cannot find row in hbase:meta, row={store.text(row)}")
        return self.getTableRegions(name)[0]

    # -- writes ---------------------------------------------------------------------------------

    @_translate
    def mutateRow(self, tableName, row, mutations, attributes):
        self.store.mutate_rows(tableName, [(row, mutations or [])], LATEST_TIMESTAMP, single_row=True)

    @_translate
    def mutateRowTs(self, tableName, row, mutations, timestamp, attributes):
        self.store.mutate_rows(tableName, [(row, mutations or [])], timestamp, single_row=True)

    @_translate
    def mutateRows(self, tableName, rowBatches, attributes):
        self.store.mutate_rows(tableName, [(b.row, b.mutations or []) for b in rowBatches or []], LATEST_TIMESTAMP)

    @_translate
    def mutateRowsTs(self, tableName, rowBatches, timestamp, attributes):
        self.store.mutate_rows(tableName, [(b.row, b.mutations or []) for b in rowBatches or []], timestamp)

    @_translate
    def atomicIncrement(self, tableName, row, column, value):
        return self.store.increment(tableName, row, column, value)

    @_translate
    def increment(self, increment):
        self.store.increment(increment.table, increment.row, increment.column, increment.ammount or 0)

    @_translate
    def incrementRows(self, increments):
        for one in increments or []:
            self.store.increment(one.table, one.row, one.column, one.ammount or 0)

    @_translate
    def append(self, append):
        cells = self.store.append(append.table, append.row, append.columns or [], append.values or [])
        return self._cells(cells)

    @_translate
    def checkAndPut(self, tableName, row, column, value, mput, attributes):
        return self.store.check_and_put(tableName, row, column, value, mput)

    @_translate
    def deleteAll(self, tableName, row, column, attributes):
        self.store.delete_all(tableName, row, column, LATEST_TIMESTAMP)

    @_translate
    def deleteAllTs(self, tableName, row, column, timestamp, attributes):
        self.store.delete_all(tableName, row, column, timestamp)

    @_translate
    def deleteAllRow(self, tableName, row, attributes):
        self.store.delete_all(tableName, row, None, LATEST_TIMESTAMP)

    @_translate
    def deleteAllRowTs(self, tableName, row, timestamp, attributes):
        self.store.delete_all(tableName, row, None, timestamp)

    # -- scanners -------------------------------------------------------------------------------

    def _open(self, name: bytes, start: Optional[bytes], stop: Optional[bytes], columns, before: int = LATEST_TIMESTAMP,
              *, batch=None, filter_string=None, reverse=False, sort=False, prefix=None) -> int:
        table = self.store.table(name)
        selection = table.selection(columns)
        filters, page = scanning.parse_filter(filter_string.decode("utf-8", "surrogateescape")) if filter_string \
            else ([], None)
        keys = table.row_range(start or b"", stop or None, reverse)
        scanner = scanning.Scanner(table, keys, selection, before, batch, filters, prefix, page, sort)
        self._expire_scanners()
        scanner_id = next(self.scanner_ids)
        self.scanners[scanner_id] = scanner
        return scanner_id

    def _expire_scanners(self) -> None:
        idle = time.monotonic() - SCANNER_LEASE_SECONDS
        for scanner_id in [i for i, s in self.scanners.items() if s.used < idle]:
            del self.scanners[scanner_id]

    def _scanner(self, scanner_id: int) -> scanning.Scanner:
        scanner = self.scanners.get(scanner_id)
        if scanner is None:
            raise store.IllegalArgument("scanner ID is invalid")
        return scanner

    @_translate
    def scannerOpenWithScan(self, tableName, scan, attributes):
        return self._open(tableName, scan.startRow, scan.stopRow, scan.columns,
                          scan.timestamp if scan.timestamp is not None else LATEST_TIMESTAMP,
                          batch=scan.batchSize, filter_string=scan.filterString, reverse=bool(scan.reversed),
                          sort=bool(scan.sortColumns))

    @_translate
    def scannerOpen(self, tableName, startRow, columns, attributes):
        return self._open(tableName, startRow, None, columns)

    @_translate
    def scannerOpenWithStop(self, tableName, startRow, stopRow, columns, attributes):
        return self._open(tableName, startRow, stopRow, columns)

    @_translate
    def scannerOpenWithPrefix(self, tableName, startAndPrefix, columns, attributes):
        return self._open(tableName, startAndPrefix, None, columns, prefix=startAndPrefix or b"")

    @_translate
    def scannerOpenTs(self, tableName, startRow, columns, timestamp, attributes):
        return self._open(tableName, startRow, None, columns, timestamp)

    @_translate
    def scannerOpenWithStopTs(self, tableName, startRow, stopRow, columns, timestamp, attributes):
        return self._open(tableName, startRow, stopRow, columns, timestamp)

    @_translate
    def scannerGetList(self, id, nbRows):  # noqa: A002 (the IDL's name)
        scanner = self._scanner(id)
        return [self._row_result(row, cells, scanner.sort) for row, cells in scanner.next(max(1, nbRows))]

    @_translate
    def scannerGet(self, id):  # noqa: A002
        return self.scannerGetList(id, 1)

    @_translate
    def scannerClose(self, id):  # noqa: A002
        self._scanner(id)
        del self.scanners[id]


# ---------------------------------------------------------------- persistence

class Snapshots:
    """Saves the whole store to `<data_dir>/hbase-emulator.pickle` (atomically) when it changed,
    every `interval` seconds and at shutdown; loads it at start.

    Periodic saves fork, as Redis' BGSAVE does: the child pickles its copy-on-write image of the
    tables while the server goes on serving, so a big table never stalls writers."""

    def __init__(self, data: Store, data_dir: Path, interval: float):
        self.store = data
        self.path = Path(data_dir) / SNAPSHOT
        self.interval = interval
        self.saved_changes = 0
        self._stop = threading.Event()

    def load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            state = pickle.load(handle)
        self.store.tables = state["tables"]
        log.info("loaded %d tables from %s", len(self.store.tables), self.path)

    def save(self, background: bool = False) -> bool:
        """Write the tables if they changed since the last save (True if it did); `background`
        forks to do it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.store.lock:
            changes = self.store.changes
            if changes == self.saved_changes and self.path.exists():
                return False
            if not background:
                self._write()
                self.saved_changes = changes
                return True
            child = os.fork()
            if child == 0:  # the child: a frozen copy of the tables, nothing else to do
                code = 1
                try:
                    self._write()
                    code = 0
                finally:
                    os._exit(code)
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"the snapshot process exited with status {status}")
        self.saved_changes = changes
        return True

    def _write(self) -> None:
        partial = self.path.with_suffix(".partial")
        with open(partial, "wb") as handle:
            pickle.dump({"format": 1, "saved": now_ms(), "tables": self.store.tables}, handle,
                        protocol=pickle.HIGHEST_PROTOCOL)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)

    def run_in_background(self) -> None:
        def loop():
            while not self._stop.wait(self.interval):
                try:
                    self.save(background=True)
                except Exception:  # keep serving; the next round or shutdown tries again
                    log.exception("snapshot to %s failed", self.path)
        threading.Thread(target=loop, name="snapshots", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------- server

def make_server(handler: Handler, host: str, port: int, compact: bool = False, framed: bool = False):
    """A threaded thriftpy2 server, no idle timeout. Binary protocol over buffered transport by
    default (HBase's `-threadpool` mode); `compact` / `framed` as HBase's `-compact` / `-framed`."""
    from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
    from thriftpy2.server import TThreadedServer
    from thriftpy2.thrift import TApplicationException, TProcessor
    from thriftpy2.transport import TBufferedTransportFactory, TFramedTransportFactory, TServerSocket

    class Processor(TProcessor):
        """Answers an unexpected failure with TApplicationException instead of dropping the connection."""

        def process(self, iprot, oprot) -> None:
            api, seqid, result, call = self.process_in(iprot)
            if isinstance(result, TApplicationException):
                return self.send_exception(oprot, api, result, seqid)
            try:
                result.success = call()
            except TApplicationException as exc:
                return self.send_exception(oprot, api, exc, seqid)
            except Exception as exc:
                if not self.handle_exception(exc, result):
                    log.exception("%s failed", api)
                    return self.send_exception(oprot, api, TApplicationException(
                        TApplicationException.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"), seqid)
            if not result.oneway:
                self.send_result(oprot, api, result, seqid)

    socket = TServerSocket(host=host, port=port, client_timeout=None)
    return TThreadedServer(Processor(handler.idl.Hbase, handler), socket,
                           iprot_factory=TCompactProtocolFactory() if compact else TBinaryProtocolFactory(),
                           itrans_factory=TFramedTransportFactory() if framed else TBufferedTransportFactory(),
                           daemon=True)


def serve(host: str, port: int, data_dir: Optional[Path], snapshot_seconds: float,
          compact: bool = False, framed: bool = False) -> None:
    """Serve until SIGTERM / SIGINT; with `data_dir`, load the last snapshot first and save at exit."""
    import signal

    data = Store()
    snapshots = Snapshots(data, data_dir, snapshot_seconds) if data_dir else None
    if snapshots:
        snapshots.load()
        snapshots.run_in_background()
    # Tables are millions of long-lived containers without reference cycles: full collections
    # would walk all of them over and over (it halves write throughput). Young objects are
    # still collected; what was loaded is never scanned again.
    gc.freeze()
    gc.set_threshold(100_000, 10, 1_000_000_000)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = make_server(Handler(data), host, port, compact, framed)
    log.info("HBase Thrift emulator on %s:%d (%s protocol, %s transport)%s", host, port,
             "compact" if compact else "binary", "framed" if framed else "buffered",
             f", data in {data_dir}" if data_dir else ", in memory only")
    try:
        server.serve()
    finally:
        server.close()
        if snapshots:
            snapshots.stop()
            if snapshots.save():
                log.info("saved %d tables to %s", len(data.tables), snapshots.path)

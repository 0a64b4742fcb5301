"""DataX writers as accelsync targets: hbase11xwriter (and hbase094xwriter, same options);
any other writer leaves a `target: {todo: ...}` block that `validate` refuses with what to fill in.
"""

from __future__ import annotations

from typing import Any

from accelsync.datax.conversion import Conversion, Record, problem

HBASE_WRITERS = ("hbase11xwriter", "hbase094xwriter", "hbase20xwriter")
_STRING = "string"
_BINARY_TYPES = ("int", "long", "short", "float", "double", "boolean")
MAX_VERSION = 2 ** 63 - 2  # 2^63-1 is HBase's "now"


def convert(conv: Conversion, name: str, parameter: dict, at: str, record: Record) -> None:
    if name in HBASE_WRITERS:
        hbase(conv, parameter, at, record)
        return
    conv.spec["target"] = {"todo": f"DataX writer {name!r} has no accelsync target: replace this block with a "
                                   f"redis, hbase or druid target (see the README, Targets)"}
    conv.comment("target", f"accelsync writes to Redis, HBase and Druid; the job's {name} was not converted")
    conv.skip(at, f"writer {name!r}: no accelsync target; fill in `target`", changes_data=True)


def _column(conv: Conversion, record: Record, index: Any, where: str) -> str:
    """The spec column of the reader's record position `index`."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise problem(conv, where, "needs a 0-based index of the reader's column")
    if record.names is None:
        raise problem(conv, where, f"cannot be converted: {record.why_unknown}")
    if index >= len(record.names):
        raise problem(conv, where, f"is {index}, past the reader's record, which has {len(record.names)} "
                                   f"columns (indexes 0 to {len(record.names) - 1})")
    return record.names[index]


def _type(conv: Conversion, column: dict, where: str, what: str) -> None:
    kind = str(column.get("type", _STRING)).lower()
    if kind == _STRING:
        return
    if kind in _BINARY_TYPES:
        conv.skip(f"{where}.type", f"{kind}: DataX stores {what} as HBase Bytes.toBytes({kind}) (binary); accelsync "
                                   f"stores the value's text (digits, true/false)", changes_data=True)
        return
    raise problem(conv, f"{where}.type", f"{kind!r} is not an hbase11xwriter type (string, int, long, short, "
                                         f"float, double, boolean)")


def hbase(conv: Conversion, parameter: dict, at: str, record: Record) -> None:
    target: dict[str, Any] = {"type": "hbase", "connection": "hbase_default"}
    conv.spec["target"] = target
    quorum = (parameter.get("hbaseConfig") or {}).get("hbase.zookeeper.quorum")
    conv.comment("target.connection", "DataX reaches HBase through ZooKeeper"
                 + (f" ({quorum})" if quorum else "") + "; accelsync writes through HBase's Thrift server: "
                 "define hbase_default as hbase://<thrift host>:9090")
    if "hbaseConfig" in parameter:
        conv.skip(f"{at}.hbaseConfig", "HBase client settings; accelsync uses the Thrift server of connection "
                                       "hbase_default")
    table = parameter.get("table")
    if not table:
        raise problem(conv, f"{at}.table", "is missing")
    target["table"] = str(table)
    mode = str(parameter.get("mode", "normal"))
    if mode != "normal":
        raise problem(conv, f"{at}.mode", f"{mode!r}: accelsync writes one row per record (DataX's normal mode)")
    target["row_key"] = _row_key(conv, parameter.get("rowkeyColumn"), f"{at}.rowkeyColumn", record)
    cells: dict[str, str] = {}
    columns = parameter.get("column")
    if not isinstance(columns, list) or not columns:
        raise problem(conv, f"{at}.column", "needs [{index, name: family:qualifier, type}]")
    for number, column in enumerate(columns):
        where = f"{at}.column[{number}]"
        if not isinstance(column, dict):
            raise problem(conv, where, "needs {index, name, type}")
        cell = str(column.get("name", ""))
        family, _, qualifier = cell.partition(":")
        if not family or not qualifier or ":" in qualifier:
            raise problem(conv, f"{where}.name", f"{cell!r} is not family:qualifier")
        name = _column(conv, record, column.get("index"), f"{where}.index")
        if column.get("index") in record.constants:
            raise problem(conv, f"{where}.index", "names a constant column of the reader; a spec writes source "
                                                  "columns into cells")
        if cell in cells:
            raise problem(conv, f"{where}.name", f"{cell} is written twice")
        _type(conv, column, where, "the cell")
        cells[cell] = name
    target["columns"] = cells
    _version(conv, parameter.get("versionColumn"), f"{at}.versionColumn", record, target)
    target["create_table"] = False
    conv.comment("target.create_table", "as with DataX, the table must exist")
    encoding = parameter.get("encoding")
    if encoding is not None and str(encoding).lower().replace("-", "") != "utf8":
        conv.skip(f"{at}.encoding", f"accelsync writes UTF-8 text, not {encoding}", changes_data=True)
    null_mode = str(parameter.get("nullMode", "skip")).lower()
    if null_mode == "empty":
        conv.skip(f"{at}.nullMode", "empty: accelsync writes no cell for NULL (it deletes the cell); DataX wrote an "
                                    "empty value", changes_data=True)
    else:
        conv.comment("target.columns", "nullMode skip: a NULL value writes no cell (accelsync also deletes an older "
                                       "cell there, so a rerun converges)")
    if parameter.get("truncate") in (True, "true"):
        conv.skip(f"{at}.truncate", "accelsync does not empty the table first; truncate it before the first run",
                  changes_data=True)
    for key, why in (("walFlag", "accelsync's Thrift writes always go to the write-ahead log (DataX's default, "
                                 "false, skipped it)"),
                     ("writeBufferSize", "a size in bytes; accelsync batches rows (target.batch_size, default 1000)"),
                     ("autoFlush", "accelsync sends each batch when it is full")):
        if key in parameter:
            conv.skip(f"{at}.{key}", why)
    known = {"hbaseConfig", "table", "mode", "rowkeyColumn", "column", "versionColumn", "encoding", "nullMode",
             "truncate", "walFlag", "writeBufferSize", "autoFlush"}
    for key in sorted(set(parameter) - known):
        conv.skip(f"{at}.{key}", "not an hbase11xwriter option accelsync knows; not read")


def _row_key(conv: Conversion, parts: Any, at: str, record: Record) -> str:
    if not isinstance(parts, list) or not parts:
        raise problem(conv, at, "needs [{index, type}] (index -1 with `value` for a constant)")
    text, columns = [], 0
    for number, part in enumerate(parts):
        where = f"{at}[{number}]"
        if not isinstance(part, dict):
            raise problem(conv, where, "needs {index, type} or {index: -1, type, value}")
        _type(conv, part, where, "the row key part")
        if part.get("index") == -1:
            if "value" not in part:
                raise problem(conv, where, "index -1 (a constant) needs a `value`")
            value = str(part["value"])
            if "{" in value or "}" in value:
                raise problem(conv, f"{where}.value", f"{value!r}: a row key template cannot hold braces")
            text.append(value)
            continue
        index = part.get("index")
        name = _column(conv, record, index, f"{where}.index")
        if index in record.constants:
            text.append(record.constants[index])
            continue
        text.append("{" + name + "}")
        columns += 1
    if not columns:
        raise problem(conv, at, "has only constants: every row would get the same key (DataX refuses it too)")
    conv.comment("target.row_key", "rowkeyColumn: its parts joined in order; constants (index -1) as written")
    return "".join(text)


def _version(conv: Conversion, version: Any, at: str, record: Record, target: dict) -> None:
    if version is None:
        conv.comment("target.columns", "no versionColumn: the server's clock stamps the cells, as in DataX")
        return
    if not isinstance(version, dict):
        raise problem(conv, at, "needs {index} or {index: -1, value}")
    index = version.get("index")
    if index == -1:
        try:
            value = int(version.get("value"))
        except (TypeError, ValueError):
            raise problem(conv, f"{at}.value", "needs a whole number of milliseconds") from None
        if not 0 <= value <= MAX_VERSION:
            raise problem(conv, f"{at}.value", f"{value} is not a cell timestamp (0 to {MAX_VERSION})")
        target["version"] = value
        conv.comment("target.version", "versionColumn index -1: every cell gets this timestamp")
        return
    name = _column(conv, record, index, f"{at}.index")
    if index in record.constants:
        raise problem(conv, f"{at}.index", "names a constant column of the reader; use index -1 with `value`")
    target["version_column"] = name
    if record.set_type is not None:
        record.set_type(name, "long", f"{name}: read as a long, the cell timestamp in milliseconds (DataX's "
                                      f"versionColumn also takes a yyyy-MM-dd HH:mm:ss date: declare it "
                                      f"timestamp then)")
    conv.comment("target.version_column", "versionColumn: a long is used as milliseconds; a date or datetime "
                                          "becomes milliseconds since 1970 UTC (DataX used the JVM's time zone)")

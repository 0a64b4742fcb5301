"""DataX readers as accelsync sources: mysqlreader, txtfilereader, and Addax's kafkareader.

Each returns the reader's `Record` (the column of each record position, which the writer's
`index` counts) after filling `conv.spec["source"]`.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import parse_qsl, quote, urlsplit

from accelsync.connections import Connection
from accelsync.datax.conversion import Conversion, JobConnection, Record, problem

_IDENT = re.compile(r"^`?([A-Za-z_][A-Za-z0-9_$]*)`?$")
READERS = ("mysqlreader", "txtfilereader", "kafkareader")


def convert(conv: Conversion, name: str, parameter: dict, at: str) -> Record:
    handlers = {"mysqlreader": mysql, "txtfilereader": txtfile, "kafkareader": kafka}
    if name not in handlers:
        raise problem(conv, at.rsplit(".", 1)[0] + ".name",
                      f"unknown reader {name!r}: accelsync converts {', '.join(READERS)}")
    return handlers[name](conv, parameter, at)


def _as_list(value: Any) -> list:
    """DataX writes lists where Addax may write one value (`jdbcUrl`, `table`, `querySql`, `path`)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _known(conv: Conversion, parameter: dict, at: str, known: set[str], why: dict[str, str]) -> None:
    """List every parameter not in `known`: with its reason from `why`, or as unknown."""
    for key in sorted(set(parameter) - known):
        conv.skip(f"{at}.{key}", why.get(key, "not an option accelsync knows for this reader; not read"))


def safe_id(*parts: Any) -> str:
    text = "_".join(str(part) for part in parts if part not in (None, ""))
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# ---------------------------------------------------------------- mysqlreader

def mysql(conv: Conversion, parameter: dict, at: str) -> Record:
    source: dict[str, Any] = {"type": "mysql"}
    conv.spec["source"] = source
    connections = _as_list(parameter.get("connection"))
    if not connections or not isinstance(connections[0], dict):
        raise problem(conv, f"{at}.connection", "needs a connection entry with `jdbcUrl` and `table` or `querySql`")
    first = connections[0]
    for index in range(1, len(connections)):
        conv.skip(f"{at}.connection[{index}]", "a spec reads one database; only connection[0] was converted "
                                               "(make one spec per database)", changes_data=True)
    urls = _as_list(first.get("jdbcUrl"))
    if not urls:
        raise problem(conv, f"{at}.connection[0].jdbcUrl", "is missing")
    for index in range(1, len(urls)):
        conv.skip(f"{at}.connection[0].jdbcUrl[{index}]",
                  "DataX tries each address in turn; the connection uses the first")
    source["connection"] = _mysql_connection(conv, urls[0], parameter, f"{at}.connection[0].jdbcUrl")
    queries = _as_list(first.get("querySql"))
    if queries:
        return _mysql_query(conv, parameter, first, queries, at)
    tables = _as_list(first.get("table"))
    if not tables:
        raise problem(conv, f"{at}.connection[0]", "needs `table` or `querySql`")
    for index in range(1, len(tables)):
        conv.skip(f"{at}.connection[0].table[{index}]", "a spec reads one table; only the first was converted "
                                                         "(make one spec per table)", changes_data=True)
    table = str(tables[0]).strip("`")
    columns = _as_list(parameter.get("column"))
    if not columns:
        raise problem(conv, f"{at}.column", "is missing (DataX requires it; [\"*\"] reads every column)")
    where = parameter.get("where")
    split = parameter.get("splitPk")
    plain = [_IDENT.match(str(c)) for c in columns]
    if columns == ["*"]:
        source["table"] = table
        record = Record(None, why_unknown=f"{at}.column is [\"*\"]: the record's column order is the "
                                          f"table's, which a job file does not say; list the columns")
        conv.comment("source.table", "column [\"*\"]: every column of the table")
    elif all(plain):
        names = [m.group(1) for m in plain]
        source["table"] = table
        source["columns"] = names
        record = Record(names)
    else:
        # constants and expressions: a query with a name for each one
        names, items = [], []
        for index, (column, match) in enumerate(zip(columns, plain)):
            if match:
                names.append(match.group(1))
                items.append(str(column))
            else:
                names.append(f"c{index}")
                items.append(f"{column} AS c{index}")
        sql = f"SELECT {', '.join(items)} FROM {tables[0]}" + (f" WHERE {where}" if where else "")
        source["query"] = sql
        conv.comment("source.query", "the job's `column` has constants or expressions, which a spec's `columns` "
                                     "cannot hold: read as this query (column i without a name is c<i>)")
        if split:
            conv.skip(f"{at}.splitPk", "a query is read in one piece (no split_pk); the job's data is the same, "
                                       "read by one channel")
            split = None
        record = Record(names)
        where = None
    if where:
        source["where"] = where
    if split:
        source["split_pk"] = split
        conv.comment("source.split_pk", "DataX splitPk: one range per channel")
    _known(conv, parameter, at, {"username", "password", "connection", "column", "where", "splitPk"},
           {"fetchSize": "accelsync reads Arrow batches of source.fetch_size rows (default 65536)",
            "session": "SQL run on connect is not carried over; set it on the server or in the query",
            "mandatoryEncoding": "accelsync reads utf8mb4 text"})
    _known(conv, first, f"{at}.connection[0]", {"jdbcUrl", "table", "querySql"}, {})
    return record


def _mysql_query(conv: Conversion, parameter: dict, first: dict, queries: list, at: str) -> Record:
    source = conv.spec["source"]
    for index in range(1, len(queries)):
        conv.skip(f"{at}.connection[0].querySql[{index}]", "a spec runs one query; only the first was converted",
                  changes_data=True)
    sql = str(queries[0]).strip()
    if sql.endswith(";"):
        sql = sql.rstrip(";").rstrip()
        conv.comment("source.query", "the job's querySql without its closing ';'")
    source["query"] = sql
    for key in ("table", "column", "where", "splitPk"):
        where = f"{at}.connection[0].{key}" if key == "table" else f"{at}.{key}"
        if (first if key == "table" else parameter).get(key) not in (None, [], ""):
            conv.skip(where, "DataX ignores it when querySql is set (querySql wins), and so does the spec")
    names = select_names(sql)
    _known(conv, parameter, at, {"username", "password", "connection", "column", "where", "splitPk"},
           {"fetchSize": "accelsync reads Arrow batches of source.fetch_size rows (default 65536)",
            "session": "SQL run on connect is not carried over; set it on the server or in the query"})
    _known(conv, first, f"{at}.connection[0]", {"jdbcUrl", "table", "querySql"}, {})
    if isinstance(names, str):
        return Record(None, why_unknown=f"{at}.connection[0].querySql: {names}")
    return Record(names)


def select_names(sql: str) -> list[str] | str:
    """The result column names of `SELECT a, t.b, f(x) AS c FROM ...`, or why they cannot be told."""
    text = sql.strip()
    head = re.match(r"^select\s+(distinct\s+)?", text, re.IGNORECASE)
    if not head:
        return "not a SELECT; its columns cannot be told"
    depth, quote_char, items, start = 0, "", [], head.end()
    position = start
    end = None
    while position < len(text):
        char = text[position]
        if quote_char:
            if char == quote_char:
                quote_char = ""
        elif char in "'\"`":
            quote_char = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char == ",":
            items.append(text[start:position])
            start = position + 1
        elif depth == 0 and re.match(r"\sfrom\s", text[position:position + 6], re.IGNORECASE):
            end = position
            break
        position += 1
    items.append(text[start:end])
    names = []
    for number, item in enumerate(items, 1):
        item = item.strip()
        alias = re.search(r"(?:\s+as)?\s+`?([A-Za-z_][A-Za-z0-9_$]*)`?$", item, re.IGNORECASE)
        plain = re.match(r"^(?:`?[A-Za-z_][A-Za-z0-9_$]*`?\.)?`?([A-Za-z_][A-Za-z0-9_$]*)`?$", item)
        if plain and item != "*":
            names.append(plain.group(1))
        elif alias and not item.endswith(")") and " " in item:
            names.append(alias.group(1))
        else:
            return (f"select item {number} ({item}) has no column name; give it one (... AS name) so the "
                    f"writer's index can name it")
    return names


def _mysql_connection(conv: Conversion, url: str, parameter: dict, at: str) -> str:
    if not url.startswith("jdbc:mysql://") and not url.startswith("jdbc:mariadb://"):
        raise problem(conv, at, f"{url.split('?')[0]!r} is not a jdbc:mysql:// URL")
    parts = urlsplit(url[len("jdbc:"):])
    try:
        port = parts.port or 3306
    except ValueError:
        raise problem(conv, at, "has a port that is not a number") from None
    host = parts.hostname or "127.0.0.1"
    database = parts.path.lstrip("/") or None
    user = parameter.get("username")
    password = parameter.get("password")
    conn_id = safe_id("mysql", host, port, database, user)
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        conv.skip(f"{at}[0]?{key}", "a JDBC driver property; the connection does not carry it")
    login = ""
    if user:
        login = quote(str(user), safe="") + (":PASSWORD" if password else "") + "@"
    shown = f"mysql://{login}{host}:{port}/{quote(database or '', safe='')}"
    conv.connections.append(JobConnection(
        conn_id, shown, Connection(conn_id, "mysql", host, port, str(user) if user else None,
                                   str(password) if password is not None and password != "" else None,
                                   database), at))
    conv.comment("source.connection", f"from jdbcUrl and username; the password stays out of the spec: set "
                                      f"AIRFLOW_CONN_{conn_id.upper()} (import-datax prints the line)")
    return conn_id


# ---------------------------------------------------------------- txtfilereader

_TXT_TYPES = {"long": "long", "double": "double", "string": "string", "boolean": "boolean"}
# DataX date formats (Java SimpleDateFormat) that accelsync's timestamp parsing reads as written.
_ISO_FORMATS = {None, "yyyy-MM-dd", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd HH:mm:ss.SSS"}


def txtfile(conv: Conversion, parameter: dict, at: str) -> Record:
    source: dict[str, Any] = {"type": "logs", "format": "csv"}
    conv.spec["source"] = source
    paths = _as_list(parameter.get("path"))
    if not paths:
        raise problem(conv, f"{at}.path", "is missing")
    source["path"] = str(paths[0])
    for index in range(1, len(paths)):
        conv.skip(f"{at}.path[{index}]", "a spec reads one path (a glob or folder); only the first was converted",
                  changes_data=True)
    columns = _as_list(parameter.get("column"))
    if not columns or columns == ["*"]:
        raise problem(conv, f"{at}.column", "list the columns with index and type: a spec types each field, "
                                            "and [\"*\"] (every column as a string) does not say how many there are")
    schema: dict[str, str] = {}
    positions: list[int] = []
    names: list[str] = []
    constants: dict[int, str] = {}
    for number, column in enumerate(columns):
        where = f"{at}.column[{number}]"
        if not isinstance(column, dict) or "type" not in column:
            raise problem(conv, where, "needs `type` and `index` (or `value`)")
        kind = str(column["type"]).lower()
        if "value" in column and "index" not in column:
            constants[number] = str(column["value"])
            names.append(f"const{number}")
            continue
        index = column.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise problem(conv, f"{where}.index", "needs a 0-based field number")
        name = f"col{index}"
        if name in schema:
            raise problem(conv, f"{where}.index", f"field {index} is read twice; read it once")
        schema[name] = _txt_type(conv, kind, column.get("format"), where, name)
        positions.append(index)
        names.append(name)
    source["schema"] = schema
    source["positions"] = positions
    conv.comment("source.schema", "field col<N> is field N (0-based) of each line, as the job's column[].index")
    delimiter = parameter.get("fieldDelimiter", ",")
    source["delimiter"] = delimiter
    if parameter.get("skipHeader") in (True, "true"):
        source["header"] = True
        conv.comment("source.header", "skipHeader: the first line of each file is skipped")
    if "nullFormat" in parameter:
        source["null_value"] = str(parameter["nullFormat"])
    _compression(conv, parameter.get("compress"), f"{at}.compress")
    _encoding(conv, parameter.get("encoding"), f"{at}.encoding", "reads")
    _known(conv, parameter, at, {"path", "column", "fieldDelimiter", "skipHeader", "nullFormat", "compress",
                                 "encoding"},
           {"csvReaderConfig": "accelsync parses CSV as RFC 4180 (pyarrow.csv: double-quoted fields may hold the "
                               "delimiter); these CsvReader settings are not carried over",
            "fileFormat": "accelsync reads the files as CSV (quoted fields allowed)"})
    record = Record(names, constants)

    def set_type(name: str, kind: str, why: str) -> None:
        if schema.get(name) == "string":  # a typed field (long, timestamp) is kept
            schema[name] = kind
            conv.comment("source.schema", why)
    record.set_type = set_type
    return record


def _txt_type(conv: Conversion, kind: str, fmt: Optional[str], where: str, name: str) -> str:
    if kind in _TXT_TYPES:
        return _TXT_TYPES[kind]
    if kind == "date":
        if fmt in _ISO_FORMATS:
            conv.comment("source.schema", f"{name}: date{' ' + repr(fmt) if fmt else ''} read as a timestamp "
                                          f"(text cells show it as DataX does: YYYY-MM-DD HH:MM:SS)")
            return "timestamp"
        conv.skip(f"{where}.format", f"date format {fmt!r} is not one accelsync parses (ISO-8601, the common log "
                                     f"format, epoch seconds); {name} is read as text", changes_data=True)
        return "string"
    raise problem(conv, f"{where}.type", f"{kind!r} is not a txtfilereader type (long, double, string, "
                                         f"boolean, date)")


def _compression(conv: Conversion, compress: Any, where: str) -> None:
    if compress in (None, "", "none"):
        return
    if str(compress).lower() == "gzip":
        conv.comment("source.path", "compress gzip: accelsync recognises gzip files by their first bytes")
        return
    conv.skip(where, f"accelsync reads plain and gzip files, not {compress}: decompress the files (or "
                     f"recompress them with gzip) first", changes_data=True)


def _encoding(conv: Conversion, encoding: Any, where: str, verb: str) -> None:
    if encoding is None or str(encoding).lower().replace("-", "") in ("utf8", ""):
        return
    conv.skip(where, f"accelsync {verb} UTF-8 only, not {encoding}", changes_data=True)


# ---------------------------------------------------------------- Addax kafkareader

def kafka(conv: Conversion, parameter: dict, at: str) -> Record:
    source: dict[str, Any] = {"type": "kafka"}
    conv.spec["source"] = source
    brokers = parameter.get("brokerList")
    topic = parameter.get("topic")
    if not brokers:
        raise problem(conv, f"{at}.brokerList", "is missing")
    if not topic:
        raise problem(conv, f"{at}.topic", "is missing")
    first = str(brokers).split(",")[0].strip()
    conn_id = safe_id("kafka", first.replace(":", "_"))
    conv.connections.append(JobConnection(
        conn_id, f'{{"conn_type": "kafka", "extra": {{"bootstrap.servers": "{brokers}"}}}}',
        Connection(conn_id, "kafka", extra={"bootstrap.servers": str(brokers)}), f"{at}.brokerList"))
    source["connection"] = conn_id
    conv.comment("source.connection", f"from brokerList: set AIRFLOW_CONN_{conn_id.upper()} (import-datax prints "
                                      f"the line)")
    source["topic"] = str(topic)
    properties = parameter.get("properties") or {}
    for key in sorted(properties):
        value = properties[key]
        if key == "auto.offset.reset" and value in ("earliest", "latest"):
            source["start"] = value
        elif key == "group.id":
            source["group"] = str(value)
        else:
            shown = "(value not shown)" if re.search(r"pass|secret|jaas|key", key) else repr(value)
            conv.skip(f"{at}.properties.{key}", f"{shown}: put consumer properties in the connection's extra "
                                                "(every extra key goes to librdkafka)")
    if "start" not in source:
        source["start"] = "earliest"
        conv.comment("source.start", "Addax uses Kafka's default (latest) without auto.offset.reset; earliest "
                                     "reads what the topic holds")
    conv.comment("source.topic", "Addax reads in a new consumer group each run until maxMessageNumber; accelsync "
                                 "reads up to the end of the log at plan time and commits the offsets at publish, "
                                 "so each run reads the messages since the last one")
    columns = [str(c) for c in _as_list(parameter.get("column"))]
    if not columns or columns == ["*"]:
        raise problem(conv, f"{at}.column", "list the JSON keys to read: with [\"*\"] the record's column order is "
                                            "the message's key order, which a job file does not say")
    bad = [c for c in columns if not _IDENT.match(c)]
    if bad:
        raise problem(conv, f"{at}.column", f"{bad[0]!r} is not a field name accelsync can use")
    schema = {column: "string" for column in columns}
    source["format"] = "json"
    source["schema"] = schema
    conv.comment("source.schema", "Addax passes JSON values as they are; read as text (numbers keep their digits)")
    if "missingKeyValue" in parameter:
        conv.skip(f"{at}.missingKeyValue", "a missing key is NULL in accelsync (a NULL cell is not written), not "
                                           f"{parameter['missingKeyValue']!r}", changes_data=True)
    _known(conv, parameter, at, {"brokerList", "topic", "column", "properties", "missingKeyValue"},
           {"maxMessageNumber": "accelsync reads up to the end of the log at plan time"})
    record = Record(columns)

    def set_type(name: str, kind: str, why: str) -> None:
        if schema.get(name) == "string":
            schema[name] = kind
            conv.comment("source.schema", why)
    record.set_type = set_type
    return record

"""Druid SQL (`POST /druid/v2/sql`) answered by SQLite.

The query is tokenised and the Druid/Calcite spellings SQLite lacks are rewritten: TIMESTAMP and
DATE literals become the stored ISO text, "quoted" identifiers become SQLite identifiers (never
string literals), the `druid.` schema is dropped, FLOOR/CEIL(x TO unit), EXTRACT(unit FROM x),
CURRENT_TIMESTAMP and APPROX_COUNT_DISTINCT are rewritten, and Druid's time functions are
registered (`sqlfunctions`). Errors come back in Druid's JSON error shape.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from accelsync.devstack.druid_emulator.sqlfunctions import UNITS
from accelsync.devstack.druid_emulator.store import Store
from accelsync.devstack.druid_emulator.timeutil import iso, parse_iso

_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<op><>|<=|>=|!=|\|\||.)
""", re.S | re.X)
_DISTINCT_COUNTS = {"APPROX_COUNT_DISTINCT", "APPROX_COUNT_DISTINCT_BUILTIN", "APPROX_COUNT_DISTINCT_DS_HLL",
                    "APPROX_COUNT_DISTINCT_DS_THETA"}
_WRITES = {"INSERT", "REPLACE"}


class DruidSqlError(Exception):
    """A query Druid would refuse: carries Druid's error JSON and HTTP status."""

    def __init__(self, message: str, code: str = "invalidInput", category: str = "INVALID_INPUT",
                 status: int = 400):
        super().__init__(message)
        self.status = status
        self.body = {"error": "druidException", "errorCode": code, "persona": "USER", "category": category,
                     "errorMessage": message, "context": {"sourceType": "sql"}}


def tokens(sql: str) -> list[tuple[str, str]]:
    found, position = [], 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        if match is None or (match.lastgroup == "op" and match.group() in ("'", '"')):
            raise DruidSqlError(f"Lexical error at position [{position + 1}]: unclosed quote")
        found.append((match.lastgroup, match.group()))
        position = match.end()
    return found


_STRINGS = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.S)
_SPECIAL = re.compile(r"\b(FLOOR|CEIL|EXTRACT|CURRENT_TIMESTAMP|CURRENT_DATE|APPROX_COUNT_DISTINCT\w*|"
                      r"INFORMATION_SCHEMA|SYS)\b|;", re.I)
_SIMPLE = re.compile(r"""(?P<literal>\b(?P<kind>TIMESTAMP|DATE)\s*'(?P<body>(?:[^']|'')*)')
                       | (?P<string>'(?:[^']|'')*')
                       | (?P<schema>(?:\bdruid|"druid")\s*\.)
                       | (?P<ident>"(?:[^"]|"")*")
                       | (?P<comment>--[^\n]*|/\*.*?\*/)""", re.S | re.I | re.X)


def translate(sql: str) -> str:
    """The SQLite text of a Druid SQL query."""
    bare = _STRINGS.sub("''", sql)
    first = re.match(r"\s*\(?\s*(\w+)", bare)
    if first is None:
        raise DruidSqlError("Query must not be empty")
    word = first.group(1).upper()
    if word in _WRITES:
        raise DruidSqlError(f"{word} operations are not supported by requested SQL engine [native], "
                            "consider using MSQ.")
    if word not in ("SELECT", "WITH", "VALUES"):
        raise DruidSqlError(f"emulator: only SELECT queries are served (got {word})")
    if _SPECIAL.search(bare) is None and sql.count("'") % 2 == 0 and sql.count('"') % 2 == 0:
        return _SIMPLE.sub(_simple, sql)  # the common case, one regex pass
    words = [(kind, text) for kind, text in tokens(sql) if kind != "space"]
    return " ".join(_rewrite(words))


def _simple(match: re.Match) -> str:
    if match.group("literal"):
        return _timestamp(match.group("kind").upper(), match.group("body").replace("''", "'"))
    if match.group("schema"):
        return ""
    if match.group("ident"):
        return "`" + match.group("ident")[1:-1].replace('""', '"').replace("`", "``") + "`"
    if match.group("comment"):
        return " "
    return match.group(0)


_CANONICAL = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}$")


def _timestamp(kind: str, literal: str) -> str:
    if _CANONICAL.match(literal):  # 'yyyy-MM-dd HH:mm:ss.SSS', the usual form: no date arithmetic needed
        return f"'{literal[:10]}T{literal[11:]}Z'"
    try:
        return _string(iso(parse_iso(literal)))
    except ValueError:
        raise DruidSqlError(f"Illegal {kind} literal '{literal}': not in format "
                            f"'{'yyyy-MM-dd HH:mm:ss' if kind == 'TIMESTAMP' else 'yyyy-MM-dd'}'") from None


def _rewrite(items: list[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(items):
        kind, text = items[index]
        upper = text.upper() if kind == "word" else ""
        following = items[index + 1] if index + 1 < len(items) else ("", "")
        if upper in ("TIMESTAMP", "DATE") and following[0] == "string":
            out.append(_timestamp(upper, following[1][1:-1].replace("''", "'")))
            index += 2
            continue
        if upper == "DRUID" and following == ("op", "."):
            index += 2
            continue
        if kind == "ident" and text[1:-1].replace('""', '"').lower() == "druid" and following == ("op", "."):
            index += 2
            continue
        if upper in ("INFORMATION_SCHEMA", "SYS") and following == ("op", "."):
            raise DruidSqlError(f"emulator: {text}.* tables are not served; use the coordinator API")
        if kind == "ident":
            out.append("`" + text[1:-1].replace('""', '"').replace("`", "``") + "`")
        elif upper in ("FLOOR", "CEIL") and following == ("op", "("):
            close = _matching(items, index + 1)
            inner = items[index + 2:close]
            split = _top_level_word(inner, "TO")
            if split is None:
                out.append(text)
                index += 1
                continue
            unit = inner[split + 1][1].upper()
            if unit not in UNITS:
                raise DruidSqlError(f"Unsupported time unit [{unit}] in {upper}")
            out.append(f"TIME_{'FLOOR' if upper == 'FLOOR' else 'CEIL'}(")
            out.extend(_rewrite(inner[:split]))
            out.append(f", '{UNITS[unit]}')")
            index = close + 1
            continue
        elif upper == "EXTRACT" and following == ("op", "("):
            close = _matching(items, index + 1)
            inner = items[index + 2:close]
            split = _top_level_word(inner, "FROM")
            if split is None or split != 1:
                raise DruidSqlError("EXTRACT needs (unit FROM expression)")
            out.append("TIME_EXTRACT(")
            out.extend(_rewrite(inner[split + 1:]))
            out.append(f", '{inner[0][1].upper()}')")
            index = close + 1
            continue
        elif upper == "CURRENT_TIMESTAMP":
            out.append(_string(iso(int(time.time() * 1000))))
        elif upper == "CURRENT_DATE":
            now = int(time.time() * 1000)
            out.append(_string(iso(now - now % 86_400_000)))
        elif upper in _DISTINCT_COUNTS and following == ("op", "("):
            out.append("COUNT(DISTINCT")
            index += 2
            continue
        else:
            out.append(text)
        index += 1
    return out


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _matching(items: list[tuple[str, str]], open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(items)):
        if items[index] == ("op", "("):
            depth += 1
        elif items[index] == ("op", ")"):
            depth -= 1
            if depth == 0:
                return index
    raise DruidSqlError("Encountered \"<EOF>\": unbalanced parentheses")


def _top_level_word(items: list[tuple[str, str]], word: str) -> int | None:
    depth = 0
    for index, (kind, text) in enumerate(items):
        if (kind, text) == ("op", "("):
            depth += 1
        elif (kind, text) == ("op", ")"):
            depth -= 1
        elif depth == 0 and kind == "word" and text.upper() == word:
            return index
    return None


def parameter_value(parameter: dict[str, Any]) -> Any:
    """A Druid SQL dynamic parameter ({"type": "VARCHAR", "value": ...}) as a SQLite value."""
    kind = str(parameter.get("type", "VARCHAR")).upper()
    value = parameter.get("value")
    if value is None:
        return None
    if kind in ("TIMESTAMP", "DATE"):
        return iso(int(value)) if isinstance(value, (int, float)) else iso(parse_iso(str(value)))
    if kind in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT"):
        return int(value)
    if kind in ("DOUBLE", "FLOAT", "REAL", "DECIMAL"):
        return float(value)
    if kind == "BOOLEAN":
        return int(bool(value))
    return str(value)


def execute(store: Store, query: str, parameters: list[dict[str, Any]] | None = None
            ) -> tuple[list[str], list[tuple]]:
    """Run a Druid SQL query; raise DruidSqlError as Druid would answer it."""
    if not isinstance(query, str) or not query.strip():
        raise DruidSqlError("Query must not be empty" if isinstance(query, str) else
                            "Missing required field [query]")
    text = translate(query.strip().rstrip(";"))
    values = [parameter_value(p) for p in parameters or []]
    try:
        return store.query(text, values)
    except sqlite3.DatabaseError as exc:
        raise _druid_error(str(exc)) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise DruidSqlError(f"Cannot evaluate the query: {exc}") from None


def _druid_error(message: str) -> DruidSqlError:
    table = re.match(r"no such table: (?:main\.)?(.+)", message)
    if table:
        return DruidSqlError(f"Object '{table.group(1)}' not found")
    column = re.match(r"no such column: (.+)", message)
    if column:
        return DruidSqlError(f"Column '{column.group(1).split('.')[-1]}' not found in any table")
    if "not authorized" in message:
        return DruidSqlError("emulator: only reads of datasources are served")
    if "no such function" in message:
        name = message.rsplit(":", 1)[-1].strip().upper()
        return DruidSqlError(f"No match found for function signature {name}(...)")
    return DruidSqlError(f"Incorrect syntax or unsupported query (SQLite: {message})")

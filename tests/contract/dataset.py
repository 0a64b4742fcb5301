"""The rows every connector is tested with: NULLs, unicode, empty text, extreme numbers and times,
and one row that every target must refuse (no key, no value, no event time).

`ROWS` are the values as a source yields them (Python values of the Arrow types of `SCHEMA`);
each connector's harness says how it stores them (tests/contract/sources.py, targets.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

# Spec field types, in column order (`schema:` of text sources; the MySQL table has the same).
SCHEMA = {"id": "long", "code": "string", "name": "string", "amount": "decimal(20,4)", "score": "double",
          "big": "long", "at": "timestamp", "day": "date", "note": "string", "ts": "timestamp"}

MYSQL_TABLE = """CREATE TABLE contract_rows (
  id BIGINT PRIMARY KEY, code VARCHAR(8) NULL, name VARCHAR(64) NULL, amount DECIMAL(20,4) NULL,
  score DOUBLE NULL, big BIGINT NULL, at DATETIME(6) NULL, day DATE NULL, note VARCHAR(64) NULL,
  ts DATETIME NULL) DEFAULT CHARSET utf8mb4"""

ROWS = [
    {"id": 1, "code": "a", "name": "plain", "amount": Decimal("12.5000"), "score": 1.5,
     "big": 9223372036854775807, "at": datetime(2026, 11, 30, 10, 0, 0, 123456), "day": date(2026, 11, 30),
     "note": "first", "ts": datetime(2026, 11, 30, 10, 0, 0)},
    {"id": 2, "code": "b", "name": "中文 Ελληνικά 😀", "amount": Decimal("-0.0001"), "score": -1.7976931348623157e308,
     "big": -9223372036854775808, "at": datetime(1970, 1, 1), "day": date(1970, 1, 1), "note": None,
     "ts": datetime(2026, 12, 1, 0, 0, 0)},
    {"id": 3, "code": "c", "name": "", "amount": Decimal("9999999999999999.9999"), "score": 2.2250738585072014e-308,
     "big": 0, "at": datetime(9999, 12, 31, 23, 59, 59, 999999), "day": date(9999, 12, 31), "note": "",
     "ts": datetime(2026, 12, 2, 23, 59, 59)},
    {"id": 4, "code": "d", "name": 'q"uote \\ back\ttab, comma', "amount": Decimal("0.0000"), "score": 0.0,
     "big": 1, "at": None, "day": None, "note": None, "ts": datetime(2026, 12, 3, 12, 0, 0)},
    # refused by every target: no HBase row-key part, no Redis value, no Druid event time
    {"id": 5, "code": None, "name": None, "amount": None, "score": None, "big": None, "at": None, "day": None,
     "note": None, "ts": None},
]
BAD_ID = 5
GOOD = [row for row in ROWS if row["id"] != BAD_ID]
VALUE_COLUMNS = [name for name in SCHEMA if name != "id"]


def json_line(row: dict) -> str:
    """A row as its producer writes JSON: decimals as text, times as ISO-8601."""
    import json

    def value(v):
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, date):
            return v.isoformat()
        return v
    return json.dumps({k: value(v) for k, v in row.items()}, ensure_ascii=False)

"""The `source:` options of MySQL / MariaDB, and every check that needs no server."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from accelsync.spec.connector import SourceSpec
from accelsync.spec.fields import Duration, Model, identifier, parse_duration


class Incremental(Model):
    """Rows whose `column` is at or above the saved watermark, minus `lookback`.

    The watermark's own value is read again (`>=`), because a row committed after the last run
    can carry the same value (a DATETIME has whole seconds); `lookback` widens the window for rows
    committed late with a smaller value (a long transaction): a duration for date and time
    columns (`5m`), a number for integer columns. Re-read rows are written again, which keyed
    targets (Redis, HBase) absorb."""

    column: str
    lookback: Optional[Union[int, Duration]] = Field(
        default=None, description="re-read this much below the watermark: 5m for a time column, 1000 for an integer")

    _check = field_validator("column")(lambda cls, v: identifier(v, "column name"))

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, v):
        if v is None:
            return v
        if isinstance(v, bool):
            raise ValueError("lookback is a duration (5m) for a time column or a number for an integer column")
        if isinstance(v, int):
            if v < 0:
                raise ValueError("lookback must not be negative")
            return v
        return parse_duration(v)


class MysqlSourceSpec(SourceSpec):
    """MySQL / MariaDB table or query, split into ranges of an integer key (DataX splitPk)."""

    # The commented block `accelsync new` writes (str.format: {name}; braces doubled).
    STARTER: ClassVar[str] = """\
source:
  type: mysql
  connection: mysql_default         # an Airflow connection id (AIRFLOW_CONN_MYSQL_DEFAULT outside Airflow)
  table: {name}                     # or query: "SELECT ..." (then no columns / where / split_pk)
  columns: [id, name, city, amount, updated_at]   # default: every column
  # where: "updated_at >= '2024-01-01'"
  split_pk: id                      # an integer column: one key range per channel
  # incremental: {{column: updated_at, lookback: 5m}}   # only rows at or above the last run's maximum
"""

    type: Literal["mysql"]
    connection: str = "mysql_default"
    table: Optional[str] = None
    query: Optional[str] = None
    columns: Optional[list[str]] = Field(default=None, min_length=1)
    where: Optional[str] = None
    split_pk: Optional[str] = None
    incremental: Optional[Incremental] = None
    fetch_size: int = Field(default=65536, ge=1, description="rows per Arrow batch read from the server")

    @field_validator("table")
    @classmethod
    def _table(cls, v):
        return None if v is None else identifier(v, "table name", qualified=True)

    @field_validator("columns")
    @classmethod
    def _columns(cls, v):
        if v is not None:
            for column in v:
                identifier(column, "column name")
            if len(set(v)) != len(v):
                raise ValueError("columns are listed more than once")
        return v

    @field_validator("split_pk")
    @classmethod
    def _split_pk(cls, v):
        return None if v is None else identifier(v, "column name")

    @model_validator(mode="after")
    def _table_or_query(self):
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` and `query`")
        if self.query is not None and (self.columns or self.where or self.split_pk or self.incremental):
            raise ValueError("`columns`, `where`, `split_pk` and `incremental` go with `table`, not `query`")
        return self

    def known_columns(self) -> Optional[list[str]]:
        return list(self.columns) if self.columns else None

    def new_only(self) -> Optional[str]:
        return "`source.incremental` reads only what is new since the last run" if self.incremental else None

    @classmethod
    def new_only_in(cls, data: dict) -> bool:
        return bool(data.get("incremental"))

    def rereads(self) -> Optional[tuple[str, str]]:
        if not self.incremental:
            return None
        return ("source.incremental", "an incremental MySQL source reads the rows at its watermark (and within "
                                      "`lookback`) again, so that no row committed late is lost")

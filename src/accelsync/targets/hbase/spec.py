"""The `target:` options of HBase, and every check that needs no server (HBase's naming rules)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Optional
from urllib.parse import quote

from pydantic import Field, field_validator, model_validator

from accelsync.spec.connector import TargetSpec
from accelsync.spec.fields import Model
from accelsync.templates import Template

# HBase's own rules: a table name (after an optional namespace) and a family name are letters,
# digits, '_', '-' and '.', not starting with '.' (HBase answers "Internal error" otherwise).
_HBASE_TABLE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*:)?[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FAMILY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class Salt(Model):
    buckets: int = Field(ge=1, le=65536)


class HbaseTargetSpec(TargetSpec):
    """HBase through its Thrift server (happybase): row key template, columns or one family."""

    # The commented block `accelsync new` writes (str.format: {name}; braces doubled).
    STARTER: ClassVar[str] = """\
target:
  type: hbase
  connection: hbase_default         # hbase://thrift-host:9090 (HBase's Thrift server)
  table: {name}
  row_key: "{{id}}"
  columns: {{"cf:name": name, "cf:city": city, "cf:amount": amount}}   # or family: cf (every column)
  version_column: updated_at        # the cell timestamp (else the server's clock)
  create_table: true                # else a missing table fails the run
"""

    type: Literal["hbase"]
    connection: str = "hbase_default"
    table: str = Field(min_length=1)
    row_key: Template
    salt: Optional[Salt] = None
    columns: Optional[dict[str, str]] = None
    family: Optional[str] = None
    version_column: Optional[str] = None
    version: Optional[int] = Field(default=None, ge=0, le=2**63 - 2, description=(
        "one cell timestamp (ms since 1970) for every cell this sync writes (DataX versionColumn index -1)"))
    create_table: bool = False
    batch_size: int = Field(default=1000, ge=1)

    @field_validator("columns")
    @classmethod
    def _cells(cls, v):
        if v is not None:
            if not v:
                raise ValueError("name at least one family:qualifier")
            for cell in v:
                if not re.match(r"^[A-Za-z0-9_.-]+:[^:]+$", cell):
                    raise ValueError(f"{cell!r} is not family:qualifier")
                if not _FAMILY.match(cell.split(":", 1)[0]):
                    raise ValueError(f"{cell!r}: the family may not start with '.'")
        return v

    @field_validator("family")
    @classmethod
    def _family(cls, v):
        if v is not None and not _FAMILY.match(v):
            raise ValueError(f"{v!r} is not a column family name (letters, digits, '_', '-', '.'; "
                             f"not starting with '.')")
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v):
        if not _HBASE_TABLE.match(v):
            raise ValueError(f"{v!r} is not an HBase table name (letters, digits, '_', '-', '.', optionally "
                             f"after 'namespace:')")
        return v

    @model_validator(mode="after")
    def _columns_or_family(self):
        if (self.columns is None) == (self.family is None):
            raise ValueError("give exactly one of `columns` (family:qualifier -> column) and `family`")
        return self

    @model_validator(mode="after")
    def _one_version(self):
        if self.version is not None and self.version_column is not None:
            raise ValueError("give at most one of `version_column` and `version`")
        return self

    @property
    def visible_before_gate(self) -> bool:
        return True  # HBase has no staging: cells are live once written

    def columns_used(self) -> dict[str, list[str]]:
        used = {"row_key": self.row_key.columns, "columns": list((self.columns or {}).values())}
        if self.version_column:
            used["version_column"] = [self.version_column]
        return used

    def asset_uri(self) -> str:
        """The Airflow Asset of this table: `hbase://<connection id>/<table>`."""
        return f"hbase://{self.connection}/{quote(self.table, safe=':')}"

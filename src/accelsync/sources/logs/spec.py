"""The `source:` options of log files, and every check that needs no file."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from accelsync.spec.connector import SourceSpec
from accelsync.spec.fields import check_schema, not_meta


class LogsSourceSpec(SourceSpec):
    """Log files (plain or gzip) matched by a glob or folder, parsed line by line."""

    # The commented block `accelsync new` writes (str.format: {name}; braces doubled).
    STARTER: ClassVar[str] = """\
source:
  type: logs
  path: /var/log/{name}/*.log.gz    # a glob or folder; plain and gzip files
  format: json                      # json | regex (with pattern) | csv (with delimiter, header)
  schema: {{id: long, name: string, city: string, amount: "decimal(10,2)", updated_at: timestamp}}
  incremental: true                 # skip files already synced (recorded at publish)
"""

    META_COLUMNS: ClassVar[tuple[str, ...]] = ("_file", "_line")

    type: Literal["logs"]
    path: str = Field(min_length=1)
    format: Literal["json", "regex", "csv"] = "json"
    pattern: Optional[str] = None
    schema_: Optional[dict[str, str]] = Field(default=None, alias="schema")
    header: bool = Field(default=False, description=(
        "csv only: the first line of each file names the fields (with `positions`: it is skipped)"))
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="csv only")
    positions: Optional[list[Annotated[int, Field(ge=0)]]] = Field(default=None, min_length=1, description=(
        "csv only: the 0-based position in each line of each schema field, in schema order; a line may "
        "have more fields (default: the fields are the line's, in order)"))
    null_value: Optional[str] = Field(default=None, description=(
        "a field whose text is exactly this is NULL (for example \\N, DataX's nullFormat), whatever its type"))
    incremental: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _check_schema = field_validator("schema_")(lambda cls, v: check_schema(v))

    @model_validator(mode="after")
    def _pattern(self):
        if self.format == "regex":
            if not self.pattern:
                raise ValueError("format regex needs a `pattern` with named groups")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from None
            if not compiled.groupindex:
                raise ValueError("pattern has no named groups (?P<name>...)")
            for group in compiled.groupindex:
                not_meta(group)
            unknown = set(self.schema_ or {}) - set(compiled.groupindex)
            if unknown:
                raise ValueError(f"schema names fields the pattern does not capture: {sorted(unknown)}")
        elif self.pattern:
            raise ValueError("`pattern` goes with format regex")
        if self.format in ("json", "csv") and not self.schema_:
            raise ValueError(f"format {self.format} needs a `schema` of field: type")
        if self.positions is not None:
            if self.format != "csv":
                raise ValueError("`positions` goes with format csv")
            if len(self.positions) != len(self.schema_):
                raise ValueError(f"`positions` has {len(self.positions)} entries for {len(self.schema_)} schema "
                                 f"fields; give one position per field, in schema order")
            if len(set(self.positions)) != len(self.positions):
                raise ValueError("`positions` names a position twice")
        return self

    def known_columns(self) -> Optional[list[str]]:
        if self.format == "regex":
            fields = list(re.compile(self.pattern).groupindex)
        else:
            fields = list(self.schema_ or {})
        return fields + list(self.META_COLUMNS)

    def new_only(self) -> Optional[str]:
        return "`source.incremental` reads only what is new since the last run" if self.incremental else None

    @classmethod
    def new_only_in(cls, data: dict) -> bool:
        return bool(data.get("incremental"))

"""MySQL / MariaDB: a table or query, split into ranges of an integer key (DataX splitPk), read
into Arrow by ConnectorX. `spec` holds the options and their checks; `source` the reading."""

from accelsync.sources.mysql.spec import MysqlSourceSpec as SPEC

IMPLEMENTATION = "accelsync.sources.mysql.source:MysqlSource"

__all__ = ["IMPLEMENTATION", "SPEC"]

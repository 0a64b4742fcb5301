"""Apache Druid: rows staged as JSON lines, ingested into a staging datasource for the gate, then
into the real one at publish. `spec` holds the options and their checks; `target` staging, gate
and publish; `client` the HTTP API; `values` rows as Druid stores them; `timeutil` event times."""

from accelsync.targets.druid.spec import DruidTargetSpec as SPEC

IMPLEMENTATION = "accelsync.targets.druid.target:DruidTarget"

__all__ = ["IMPLEMENTATION", "SPEC"]
